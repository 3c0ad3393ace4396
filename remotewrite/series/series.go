// Package series is the protocol-neutral seam between the scrape side
// (package forwarder) and remote write (package remotewrite): series with
// labels, float samples and their family's metadata, in no wire format.
// remotewrite encodes them as remote write 1.0 (prometheus.WriteRequest) or
// 2.0 (io.prometheus.write.v2.Request). It is a leaf: it imports only the
// Prometheus label and metric-type models.
package series

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Series is one series of a scrape round. Its label set is Labels, or,
// when Template is set, Template's with its slots filled from Values
// (Labels is then ignored): use AppendLabels, Get and Name to read it
// either way.
type Series struct {
	// Labels are sorted by name, __name__ included, no empty value.
	Labels []labels.Label
	// Template and Values give the label set instead of Labels when
	// Template is not nil: series sharing them let encoders reuse their
	// prepared wire form across series and rounds.
	Template *Template
	Values   *Values
	// Samples are float samples in timestamp order (ms since the epoch).
	// A classic histogram or summary is one Series per bucket, quantile,
	// _sum and _count, as in the text exposition.
	Samples []Sample
	// Metadata is the series' family (type, help, unit), shared by every
	// series of the family; nil when unknown. Remote write 2.0 sends it
	// with the series; 1.0 sends family metadata in separate requests
	// (remotewrite.Queue.AppendMetadata).
	Metadata *Metadata
}

// Sample is one float sample.
type Sample struct {
	Value     float64
	Timestamp int64 // ms since the epoch
}

// Metadata describes a metric family.
type Metadata struct {
	// Family is the family name (a histogram's foo for foo_bucket,
	// foo_sum and foo_count).
	Family string
	// Type is the family's type; "" or model.MetricTypeUnknown when the
	// exposition gave none.
	Type model.MetricType
	// Help and Unit are as exposed; "" when absent.
	Help, Unit string
}

// AppendLabels appends the series' label set (sorted by name) to dst.
func (s *Series) AppendLabels(dst []labels.Label) []labels.Label {
	if s.Template != nil {
		return s.Template.AppendTo(dst, s.Values)
	}
	return append(dst, s.Labels...)
}

// Get returns the value of the label name, "" when the series has none.
func (s *Series) Get(name string) string {
	if s.Template != nil {
		return s.Template.Get(name, s.Values)
	}
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Name returns the series' metric name (its __name__ value), "" when it
// has none.
func (s *Series) Name() string {
	if s.Template != nil {
		if n := s.Template.Name(); n != "" {
			return n
		}
	}
	return s.Get(labels.MetricName)
}

// Count returns the number of samples in ss.
func Count(ss []Series) int {
	n := 0
	for i := range ss {
		n += len(ss[i].Samples)
	}
	return n
}
