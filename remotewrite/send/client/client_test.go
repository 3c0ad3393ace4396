package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/series"

	commoncfg "github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"
)

// oneBlock encodes a tiny round for client tests.
func oneBlock(t *testing.T) []byte {
	t.Helper()
	blocks, _, err := codec.NewEncoder(100, nil, testComp(t)).Encode([]series.Series{mkSeries("up", []series.Sample{sample(1, 1)})}, codec.FormatV1)
	require.NoError(t, err)
	require.Len(t, blocks, 1)
	return blocks[0].Data
}

func testClient(t *testing.T, cfg config.Config) *Client {
	t.Helper()
	cfg.ApplyDefaults()
	require.NoError(t, cfg.Validate())
	rt, err := cfg.NewRoundTripper()
	require.NoError(t, err)
	return New(cfg, rt, "kata-monitor/test", func(string, time.Duration) {})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// TestClientHeadersAndAuth: the headers and the credentials of each
// authentication block, as the receiver sees them. Long for its table,
// one row per block.
func TestClientHeadersAndAuth(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	tokFile := filepath.Join(dir, "token")
	writeFile(t, pwFile, "pw-from-file\n")
	writeFile(t, tokFile, "token-v1")
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

	tests := []struct {
		name string
		cfg  func(c *config.Config)
		// between runs after the first send, e.g. rotate a file
		rotate func(t *testing.T)
		want   []map[string]string // headers wanted on the 1st and 2nd request
	}{
		{
			name: "protocol headers",
			cfg:  func(*config.Config) {},
			want: []map[string]string{{
				"Content-Encoding":                  "snappy",
				"Content-Type":                      "application/x-protobuf",
				"X-Prometheus-Remote-Write-Version": "0.1.0",
				"User-Agent":                        "kata-monitor/test",
				"Authorization":                     "",
			}},
		},
		{
			name: "custom headers and user agent override",
			cfg: func(c *config.Config) {
				c.Headers = map[string]string{"X-Scope-OrgID": "tenant-1", "THANOS-TENANT": "t2", "user-agent": "custom/1"}
			},
			want: []map[string]string{{"X-Scope-Orgid": "tenant-1", "Thanos-Tenant": "t2", "User-Agent": "custom/1"}},
		},
		{
			name: "basic auth password from file",
			cfg: func(c *config.Config) {
				c.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: "alice", PasswordFile: pwFile}
			},
			want: []map[string]string{{"Authorization": basic("alice", "pw-from-file")}},
		},
		{
			name: "basic auth inline",
			cfg: func(c *config.Config) {
				c.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: "bob", Password: "inline"}
			},
			want: []map[string]string{{"Authorization": basic("bob", "inline")}},
		},
		{
			name: "bearer from credentials_file, re-read after rotation",
			cfg: func(c *config.Config) {
				c.HTTPClientConfig.Authorization = &commoncfg.Authorization{CredentialsFile: tokFile}
			},
			rotate: func(t *testing.T) { writeFile(t, tokFile, "token-v2") },
			want: []map[string]string{
				{"Authorization": "Bearer token-v1"},
				{"Authorization": "Bearer token-v2"},
			},
		},
		{
			name: "custom authorization type",
			cfg: func(c *config.Config) {
				c.HTTPClientConfig.Authorization = &commoncfg.Authorization{Type: "Token", Credentials: "abc"}
			},
			want: []map[string]string{{"Authorization": "Token abc"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil).Start()
			cfg := config.Config{URL: rc.URL()}
			tt.cfg(&cfg)
			c := testClient(t, cfg)
			data := oneBlock(t)
			for i, want := range tt.want {
				if i > 0 && tt.rotate != nil {
					tt.rotate(t)
				}
				require.NoError(t, c.Store(context.Background(), data, codec.FormatV1))
				got := rc.Requests()
				require.Len(t, got, i+1)
				for k, v := range want {
					require.Equal(t, v, got[i].Header.Get(k), "header %s on request %d", k, i)
				}
				require.Len(t, got[i].Req.Timeseries, 1, "body decodes")
			}
		})
	}
}

func TestClientStatusClassification(t *testing.T) {
	no := false
	tests := []struct {
		name           string
		code           int
		header         map[string]string
		no429          bool
		wantRecover    bool
		wantDrop       bool
		wantRetryAfter time.Duration
	}{
		{name: "200", code: 200},
		{name: "204", code: 204},
		{name: "500", code: 500, wantRecover: true},
		{name: "503 retry-after seconds", code: 503, header: map[string]string{"Retry-After": "7"}, wantRecover: true, wantRetryAfter: 7 * time.Second},
		{name: "429 retried", code: 429, wantRecover: true},
		{name: "429 not retried when disabled", code: 429, no429: true, wantDrop: true},
		{name: "400 refused", code: 400, wantDrop: true},
		{name: "413 too large", code: 413, wantDrop: true},
		{name: "404 retried", code: 404, wantRecover: true},
		{name: "401 retried", code: 401, wantRecover: true},
		{name: "408 retry-after", code: 408, header: map[string]string{"Retry-After": "3"}, wantRecover: true, wantRetryAfter: 3 * time.Second},
		{name: "302 kept for retry", code: 302, header: map[string]string{"Location": "/elsewhere"}, wantRecover: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(int, *http.Request) (int, map[string]string) { return tt.code, tt.header }).Start()
			cfg := config.Config{URL: rc.URL()}
			if tt.no429 {
				cfg.QueueConfig.RetryOnHTTP429 = &no
			}
			err := testClient(t, cfg).Store(context.Background(), oneBlock(t), codec.FormatV1)
			var rerr RecoverableError
			var herr StatusError
			switch {
			case tt.wantRecover:
				require.ErrorAs(t, err, &rerr)
				require.Equal(t, tt.wantRetryAfter, rerr.RetryAfter)
			case tt.wantDrop:
				require.ErrorAs(t, err, &herr)
				require.False(t, errors.As(err, &rerr))
				require.Equal(t, tt.code, herr.Code)
				require.Contains(t, herr.Body, "answer")
			default:
				require.NoError(t, err)
			}
		})
	}
}

func TestClientNetworkErrorIsRecoverable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	err = testClient(t, config.Config{URL: "http://" + addr + "/w"}).Store(context.Background(), oneBlock(t), codec.FormatV1)
	var rerr RecoverableError
	require.ErrorAs(t, err, &rerr)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = testClient(t, config.Config{URL: "http://" + addr + "/w"}).Store(ctx, oneBlock(t), codec.FormatV1)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.As(err, &rerr), "shutdown is not a receiver failure")
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999", maxRetryAfterSeconds * time.Second},
		{" 7\t", 7 * time.Second},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfterSeconds * time.Second}, // a date is capped as seconds are
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, retryAfter(tt.in, now))
		})
	}
}

// selfSignedCA returns a CA and a server certificate for serverName signed
// by it, as PEM files in dir, plus the server's tls.Certificate.
func selfSignedCA(t *testing.T, dir, serverName string) (caFile string, serverCert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kata-monitor test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: serverName},
		DNSNames:     []string{serverName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	require.NoError(t, err)

	caFile = filepath.Join(dir, "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, cert := selfSignedCA(t, dir, "receiver.test")

	tests := []struct {
		name    string
		tls     commoncfg.TLSConfig
		wantErr string
	}{
		{name: "ca and server_name", tls: commoncfg.TLSConfig{CAFile: caFile, ServerName: "receiver.test", MinVersion: tls.VersionTLS12}},
		{name: "wrong server_name", tls: commoncfg.TLSConfig{CAFile: caFile, ServerName: "other.test"}, wantErr: "certificate"},
		{name: "no ca", tls: commoncfg.TLSConfig{ServerName: "receiver.test"}, wantErr: "certificate"},
		{name: "insecure skip verify", tls: commoncfg.TLSConfig{InsecureSkipVerify: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			rc.Srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			rc.Srv.StartTLS()
			t.Cleanup(rc.Srv.Close)
			err := testClient(t, config.Config{URL: rc.URL(), HTTPClientConfig: commoncfg.HTTPClientConfig{TLSConfig: tt.tls}}).Store(context.Background(), oneBlock(t), codec.FormatV1)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Empty(t, rc.Requests())
				return
			}
			require.NoError(t, err)
			require.Len(t, rc.Requests(), 1)
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"1", "0", "-1", "120", now.Add(time.Minute).Format(http.TimeFormat), "Wed, 21 Oct 2015 07:28:00 GMT", "x"} {
		f.Add(s)
	}
	f.Add(" +7\t")
	const most = maxRetryAfterSeconds * time.Second
	f.Fuzz(func(t *testing.T, v string) {
		d := retryAfter(v, now)
		if d < 0 || d > most {
			t.Fatalf("retryAfter(%q) = %v, outside [0, %v]", v, d, most)
		}
		if padded := retryAfter(" \t"+v+" ", now); padded != d {
			t.Fatalf("retryAfter(%q) = %v but %v with blanks around it", v, d, padded)
		}
		if d == 0 {
			return
		}
		// A delay comes only from delay-seconds or an HTTP-date (RFC 9110
		// section 10.2.3), and says what they say.
		s := strings.TrimSpace(v)
		if n, err := strconv.Atoi(s); err == nil {
			if want := time.Duration(min(n, maxRetryAfterSeconds)) * time.Second; d != want {
				t.Fatalf("retryAfter(%q) = %v, want %v", v, d, want)
			}
			return
		}
		when, err := http.ParseTime(s)
		if err != nil {
			t.Fatalf("retryAfter(%q) = %v from neither seconds nor an HTTP-date", v, d)
		}
		if want := min(when.Sub(now), most); d != want {
			t.Fatalf("retryAfter(%q) = %v, want %v", v, d, want)
		}
	})
}

// TestStatusAction pins the status policy table of docs/remote-write.md,
// row by row.
func TestStatusAction(t *testing.T) {
	tests := []struct {
		codes      []int
		retryOn429 bool
		want       Action
	}{
		{codes: []int{200, 201, 204, 299}, retryOn429: true, want: ActDone},
		{codes: []int{400, 409, 422}, retryOn429: true, want: ActRefused},
		{codes: []int{413}, retryOn429: true, want: ActTooLarge},
		{codes: []int{401, 403, 404, 405, 407, 408, 410, 411, 415, 418, 425, 429, 431, 451, 499}, retryOn429: true, want: ActRetry},
		{codes: []int{500, 502, 503, 504, 507, 599}, retryOn429: true, want: ActRetry},
		{codes: []int{300, 301, 302, 307, 308}, retryOn429: true, want: ActRetry},
		{codes: []int{429}, retryOn429: false, want: ActDrop},
		{codes: []int{408, 503}, retryOn429: false, want: ActRetry},
	}
	for _, tt := range tests {
		for _, code := range tt.codes {
			require.Equal(t, tt.want, StatusAction(code, tt.retryOn429, false), "code %d retry_on_http_429 %v", code, tt.retryOn429)
		}
	}
}

// TestNewConfigKeysValidated: the new keys name themselves in errors.
// TestParseWritten reads the Written headers as the specification defines
// them: one 64-bit integer each; a missing one counts 0 once any is there.
func TestParseWritten(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	require.Equal(t, Written{}, parseWritten(h()))
	require.Equal(t, Written{Known: true, Samples: 5}, parseWritten(h(hdrSamplesWritten, "5")))
	require.Equal(t, Written{Known: true, Samples: 7}, parseWritten(h(hdrSamplesWritten, "5", hdrHistogramsWritten, "2")))
	require.Equal(t, Written{Known: true}, parseWritten(h(hdrExemplarsWritten, "0")))
	require.Equal(t, Written{}, parseWritten(h(hdrSamplesWritten, "many")))
	require.Equal(t, Written{Known: true, Samples: math.MaxInt64}, parseWritten(h(hdrSamplesWritten, strconv.FormatInt(math.MaxInt64, 10))))
}
