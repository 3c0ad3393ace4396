//go:build tools

// Package tools pins modules the design names before every one of them has an
// importer, so `go mod tidy` keeps go.mod stable while the stages are written.
package tools

import (
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/gogo/protobuf/proto"
	_ "github.com/golang/snappy"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/common/config"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/prometheus/exporter-toolkit/web"
	_ "github.com/prometheus/prometheus/model/labels"
	_ "github.com/prometheus/prometheus/model/relabel"
	_ "github.com/prometheus/prometheus/model/textparse"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/tsdb/wlog"
	_ "github.com/stretchr/testify/require"
	_ "golang.org/x/sync/errgroup"
	_ "google.golang.org/grpc"
	_ "gopkg.in/yaml.v3"
	_ "k8s.io/api/apps/v1"
	_ "k8s.io/cri-api/pkg/apis/runtime/v1"
)
