// Package fakecri is a CRI RuntimeService served over gRPC on a real unix
// socket, for tests, the demo and the benchmark. It knows only what it is told
// through SetPod/RemovePod and answers the read-only calls kata-monitor makes
// (ListPodSandbox, PodSandboxStatus, Version); everything else is
// Unimplemented, as a real runtime would refuse calls it does not support.
package fakecri

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kata-containers/kata-monitor/sources/cri"
)

// Server is a running fake CRI. All methods are concurrency-safe. The caller
// owns it and must Close it.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	socket string
	grpc   *grpc.Server
	served chan struct{} // closed when Serve returned
	once   sync.Once
	calls  atomic.Int64

	mu    sync.Mutex
	pods  map[string]*runtimeapi.PodSandbox
	delay time.Duration
	err   error
}

// Start listens on socketPath (a stale socket file there is replaced) and
// serves in a goroutine owned by the Server until Close. It returns once the
// socket accepts connections.
func Start(socketPath string) (*Server, error) {
	if fi, err := os.Lstat(socketPath); err == nil && fi.Mode().Type() == fs.ModeSocket {
		if err := os.Remove(socketPath); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", socketPath, err)
	}
	s := &Server{
		socket: socketPath,
		grpc:   grpc.NewServer(),
		served: make(chan struct{}),
		pods:   make(map[string]*runtimeapi.PodSandbox),
	}
	runtimeapi.RegisterRuntimeServiceServer(s.grpc, s)
	go func() {
		defer close(s.served)
		// Serve only returns an error other than ErrServerStopped if the
		// listener breaks; tests then see failing calls, which is the point.
		_ = s.grpc.Serve(l)
	}()
	return s, nil
}

// Socket returns the path the server listens on.
func (s *Server) Socket() string { return s.socket }

// SetPod adds or replaces the pod sandbox id, in state SANDBOX_READY.
func (s *Server) SetPod(id string, pod cri.Pod) {
	sb := &runtimeapi.PodSandbox{
		Id: id,
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Uid: pod.UID, Namespace: pod.Namespace,
		},
		State:          runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt:      time.Now().UnixNano(),
		RuntimeHandler: "kata",
	}
	s.mu.Lock()
	s.pods[id] = sb
	s.mu.Unlock()
}

// RemovePod forgets the pod sandbox id; unknown ids are ignored.
func (s *Server) RemovePod(id string) {
	s.mu.Lock()
	delete(s.pods, id)
	s.mu.Unlock()
}

// SetDelay makes every later ListPodSandbox wait d before answering (or until
// the caller gives up), to simulate a slow runtime. Zero removes the delay.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// SetError makes every later ListPodSandbox fail with err (a gRPC status
// error is passed through, any other error arrives as codes.Unknown); nil
// restores normal answers.
func (s *Server) SetError(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// ListCalls returns how many ListPodSandbox calls reached the server,
// including failed and delayed ones.
func (s *Server) ListCalls() int64 { return s.calls.Load() }

// Close stops serving, drops open connections (clients see the runtime go
// away), waits for the serving goroutine and removes the socket. Idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		s.grpc.Stop()
		<-s.served
		// Closing the listener normally unlinks the socket already; a
		// leftover one would be replaced by the next Start on this path.
		_ = os.Remove(s.socket)
	})
}

// Version implements runtimeapi.RuntimeServiceServer.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       "fakecri",
		RuntimeVersion:    "0.1.0",
		RuntimeApiVersion: "v1",
	}, nil
}

// ListPodSandbox implements runtimeapi.RuntimeServiceServer, honouring the
// filter's id, state and label selector. Items are sorted by id.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.calls.Add(1)
	s.mu.Lock()
	delay, err := s.delay, s.err
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	if err != nil {
		return nil, err
	}

	f := req.GetFilter()
	s.mu.Lock()
	items := make([]*runtimeapi.PodSandbox, 0, len(s.pods))
	for id, sb := range s.pods {
		if f.GetId() != "" && f.GetId() != id {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != sb.GetState() {
			continue
		}
		if !matchLabels(sb.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		items = append(items, sb)
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b *runtimeapi.PodSandbox) int { return strings.Compare(a.GetId(), b.GetId()) })
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}

// PodSandboxStatus implements runtimeapi.RuntimeServiceServer; unknown ids
// get codes.NotFound as from containerd.
func (s *Server) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	s.mu.Lock()
	sb, ok := s.pods[req.GetPodSandboxId()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", req.GetPodSandboxId())
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:             sb.GetId(),
		Metadata:       sb.GetMetadata(),
		State:          sb.GetState(),
		CreatedAt:      sb.GetCreatedAt(),
		Labels:         sb.GetLabels(),
		Annotations:    sb.GetAnnotations(),
		RuntimeHandler: sb.GetRuntimeHandler(),
	}}, nil
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
