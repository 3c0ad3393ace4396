package fakecri_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kata-containers/kata-monitor/sources/cri"
	"github.com/kata-containers/kata-monitor/test/fakecri"
	"github.com/kata-containers/kata-monitor/test/sockets"
)

func start(t *testing.T) (*fakecri.Server, runtimeapi.RuntimeServiceClient) {
	t.Helper()
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv, err := fakecri.Start(sock)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return srv, runtimeapi.NewRuntimeServiceClient(conn)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestListPodSandbox(t *testing.T) {
	srv, client := start(t)
	srv.SetPod("b", cri.Pod{UID: "uid-b", Name: "pod-b", Namespace: "ns"})
	srv.SetPod("a", cri.Pod{UID: "uid-a", Name: "pod-a", Namespace: "ns"})
	srv.SetPod("c", cri.Pod{UID: "uid-c", Name: "pod-c", Namespace: "other"})
	srv.RemovePod("c")

	tests := []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{name: "no filter", want: []string{"a", "b"}},
		{name: "by id", filter: &runtimeapi.PodSandboxFilter{Id: "b"}, want: []string{"b"}},
		{name: "unknown id", filter: &runtimeapi.PodSandboxFilter{Id: "zzz"}, want: []string{}},
		{name: "ready", filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}, want: []string{"a", "b"}},
		{name: "not ready", filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: tt.filter})
			require.NoError(t, err)
			got := []string{}
			for _, it := range resp.GetItems() {
				got = append(got, it.GetId())
				require.Equal(t, "uid-"+it.GetId(), it.GetMetadata().GetUid())
				require.Equal(t, "pod-"+it.GetId(), it.GetMetadata().GetName())
				require.Equal(t, "ns", it.GetMetadata().GetNamespace())
			}
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, int64(len(tests)), srv.ListCalls())
}

func TestSetError(t *testing.T) {
	srv, client := start(t)
	srv.SetError(status.Error(codes.Unavailable, "runtime restarting"))
	_, err := client.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	srv.SetError(nil)
	_, err = client.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	require.NoError(t, err)
	require.Equal(t, int64(2), srv.ListCalls())
}

func TestSetDelayHonoursDeadline(t *testing.T) {
	srv, client := start(t)
	srv.SetDelay(time.Hour)
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client.ListPodSandbox(c, &runtimeapi.ListPodSandboxRequest{})
	require.Equal(t, codes.DeadlineExceeded, status.Code(err))
	srv.SetDelay(0)
	_, err = client.ListPodSandbox(ctx(t), &runtimeapi.ListPodSandboxRequest{})
	require.NoError(t, err)
}

func TestPodSandboxStatusAndVersion(t *testing.T) {
	srv, client := start(t)
	srv.SetPod("a", cri.Pod{UID: "u", Name: "n", Namespace: "ns"})

	resp, err := client.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "a"})
	require.NoError(t, err)
	require.Equal(t, "a", resp.GetStatus().GetId())
	require.Equal(t, "u", resp.GetStatus().GetMetadata().GetUid())
	require.Equal(t, runtimeapi.PodSandboxState_SANDBOX_READY, resp.GetStatus().GetState())

	_, err = client.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "missing"})
	require.Equal(t, codes.NotFound, status.Code(err))

	v, err := client.Version(ctx(t), &runtimeapi.VersionRequest{})
	require.NoError(t, err)
	require.Equal(t, "fakecri", v.GetRuntimeName())

	_, err = client.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{})
	require.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestCloseRemovesSocketAndRestart(t *testing.T) {
	sock := filepath.Join(sockets.Dir(t), "cri.sock")
	srv, err := fakecri.Start(sock)
	require.NoError(t, err)
	srv.Close()
	srv.Close() // idempotent
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist)

	srv, err = fakecri.Start(sock)
	require.NoError(t, err, "the path is reusable after Close")
	srv.Close()
}
