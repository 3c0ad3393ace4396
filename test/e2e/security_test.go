package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/kata-containers/kata-monitor/test/daemon"
)

// TestSecurityHostileRequests: hostile sandbox ids, huge queries and headers
// against the real binary. Every answer is a 4xx, never a 5xx, and the
// daemon stays up.
// Long for its tables of hostile ids, queries and headers.
func TestSecurityHostileRequests(t *testing.T) {
	t.Parallel()
	node := startNode(t, 2)
	m := startMonitor(t, node)
	id := node.IDs()[0]
	ids := map[string]string{
		"dotdot":          "..",
		"traversal":       "../../etc/passwd",
		"slash":           "a/b",
		"encoded dotdot":  "%2e%2e%2f%2e%2e",
		"encoded slash":   "%2F",
		"NUL":             "%00",
		"NUL in id":       id + "%00",
		"unicode":         "%E2%98%83",
		"raw unicode":     "☃",
		"bad escape":      "%zz",
		"repeated":        id + "&sandbox=" + id,
		"64KB":            strings.Repeat("a", 64<<10),
		"control char":    "%07",
		"backslash":       `..%5C..%5Cetc`,
		"unknown 64 hex":  strings.Repeat("f", 64),
		"id plus dotdot":  id + "/..",
		"id with newline": id + "%0d%0aX-Injected:%201",
	}
	paths := []string{"/metrics", "/agent-url", "/debug/vars", "/debug/pprof/", "/debug/pprof/heap"}
	type req struct{ name, raw string }
	var reqs []req
	for name, v := range ids {
		for _, p := range paths {
			reqs = append(reqs, req{name + " " + p, fmt.Sprintf("GET %s?sandbox=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p, v)})
		}
	}
	reqs = append(reqs,
		req{"debug path traversal", "GET /debug/pprof/../../../etc/passwd?sandbox=" + id + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"debug encoded traversal", "GET /debug/pprof/%2e%2e/%2e%2e/etc/passwd?sandbox=" + id + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"debug unknown path", "GET /debug/evil?sandbox=" + id + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"raw NUL in request line", "GET /metrics?sandbox=\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"1MB query", "GET /metrics?filter_family=" + strings.Repeat("k,", 512<<10) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"8KB query", "GET /metrics?filter_family=" + strings.Repeat("k,", 4<<10) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
		req{"200KB header", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 200<<10) + "\r\nConnection: close\r\n\r\n"},
		req{"10000 headers", "GET /metrics HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: 1\r\n", 10000) + "Connection: close\r\n\r\n"},
		req{"POST", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
	)
	counts := map[int]int{}
	for _, r := range reqs {
		code := rawRequest(t, m.addr, r.raw)
		counts[code]++
		require.True(t, code >= 400 && code < 500, "%s: answered %d", r.name, code)
	}
	code, _ := m.get("/healthz", nil)
	require.Equal(t, 200, code)
	require.True(t, m.alive())
	self := m.selfMetrics(t)
	for k, v := range self {
		if strings.HasPrefix(k, "kata_monitor_http_requests_total{") && strings.Contains(k, `code="5`) {
			t.Fatalf("%s = %g", k, v)
		}
	}
	// Nothing was created or read outside the sandbox root.
	_, err := os.Stat(filepath.Join(node.Root, "..", "etc"))
	require.True(t, os.IsNotExist(err))
	faultResult(t, "%d hostile requests, answers by code %v, bad_requests_total=%g, no 5xx, alive",
		len(reqs), counts, self["kata_monitor_http_bad_requests_total"])
}

// TestSecuritySlowloris: a client that dribbles an endless request header
// is disconnected at ReadHeaderTimeout (min(10s, web.read_timeout)).
func TestSecuritySlowloris(t *testing.T) {
	t.Parallel()
	node := startNode(t, 1)
	const headerTimeout = 2 * time.Second
	m := startMonitor(t, node, "--config", pullConfig(t, faultTimeout, 0, fmt.Sprintf("web:\n  read_timeout: %s\n", headerTimeout)))

	for _, drip := range []bool{false, true} {
		t.Run(fmt.Sprintf("drip=%v", drip), func(t *testing.T) {
			c, err := net.Dial("tcp", m.addr)
			require.NoError(t, err)
			defer c.Close()
			began := time.Now()
			_, err = io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
			require.NoError(t, err)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if drip {
				wg.Add(1)
				go func() { // one header byte every 200ms, forever
					defer wg.Done()
					tick := time.NewTicker(200 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							if _, err := c.Write([]byte("X")); err != nil {
								return
							}
						}
					}
				}()
			}
			require.NoError(t, c.SetReadDeadline(time.Now().Add(headerTimeout+margin+5*time.Second)))
			_, err = io.ReadAll(c) // returns when the server closes
			took := time.Since(began)
			close(stop)
			wg.Wait()
			// EOF or a reset both mean the server hung up; our deadline means it did not.
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				t.Fatalf("the server never closed the connection: %v", err)
			}
			require.Less(t, took, headerTimeout+margin)
			require.Greater(t, took, headerTimeout/2)
			faultResult(t, "incomplete header (drip=%v) closed by the server after %s (read_header_timeout %s)", drip, took.Round(time.Millisecond), headerTimeout)
		})
	}
	code, _ := m.get("/healthz", nil)
	require.Equal(t, 200, code)
}

// TestSecurityDebugDisabled: web.enable_debug: false hides every /debug/*
// path (404) while the other endpoints keep working.
func TestSecurityDebugDisabled(t *testing.T) {
	t.Parallel()
	node := startNode(t, 1)
	m := startMonitor(t, node, "--config", pullConfig(t, faultTimeout, 0, "web:\n  enable_debug: false\n"))
	id := node.IDs()[0]
	for _, p := range []string{"/debug/vars", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/profile", "/debug/pprof/trace"} {
		code, body := m.get(p+"?sandbox="+id, nil)
		require.Equal(t, 404, code, "%s: %.200s", p, body)
	}
	code, body := m.get("/agent-url?sandbox="+id, nil)
	require.Equal(t, 200, code)
	require.Contains(t, body, "vsock://")
	faultResult(t, "enable_debug: false: 6 debug paths answer 404, /agent-url 200")
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kata-monitor-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestSecurityTLSBasicAuth: --web.config.file with TLS and a bcrypt basic
// auth user protects every endpoint: plain HTTP, no credentials and a wrong
// password are refused; the right ones get through.
func TestSecurityTLSBasicAuth(t *testing.T) {
	t.Parallel()
	node := startNode(t, 1)
	id := node.IDs()[0]
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("open-sesame"), bcrypt.MinCost)
	require.NoError(t, err)
	webCfg := filepath.Join(dir, "web.yaml")
	require.NoError(t, os.WriteFile(webCfg, []byte(fmt.Sprintf(
		"tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  admin: %s\n", certFile, keyFile, hash)), 0o600))

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	m := &monitor{t: t, addr: freeAddr(t), log: &daemon.Buffer{}}
	get := func(scheme, path, user, pass string) int {
		req, err := http.NewRequest(http.MethodGet, scheme+"://"+m.addr+path, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	m.args = []string{"--listen-address", m.addr, "--runtime-endpoint", "unix://" + node.CRISocket,
		"--sandbox-root", node.Root, "--web.config.file", webCfg}
	m.launch()
	t.Cleanup(func() {
		m.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("kata-monitor log:\n%s", tail(m.log.String(), 80))
		}
	})
	waitFor(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return m.alive() && get("https", "/healthz", "admin", "open-sesame") == 200, "not serving TLS yet"
	})

	for _, p := range []string{"/", "/metrics", "/sandboxes", "/agent-url?sandbox=" + id, "/debug/vars?sandbox=" + id, "/debug/pprof/?sandbox=" + id, "/healthz", "/readyz", "/nope"} {
		t.Run(p, func(t *testing.T) {
			require.Equal(t, 401, get("https", p, "", ""), "no credentials")
			require.Equal(t, 401, get("https", p, "admin", "wrong"), "wrong password")
			require.Equal(t, 401, get("https", p, "root", "open-sesame"), "unknown user")
			want := 200
			if p == "/nope" {
				want = 404
			}
			require.Equal(t, want, get("https", p, "admin", "open-sesame"))
			require.NotEqual(t, 200, get("http", p, "admin", "open-sesame"), "plain HTTP accepted")
		})
	}
	faultResult(t, "TLS + basic auth: 9 endpoints: 401 without/with wrong credentials, plain HTTP refused, 200 with admin")
}

// TestSecuritySecretsNeverLogged: remote_write basic auth and bearer
// secrets reach the receiver but never the daemon's logs (at trace level,
// with failing receivers so errors are logged) nor any page it serves.
func TestSecuritySecretsNeverLogged(t *testing.T) {
	t.Parallel()
	const password, bearer = "PW-s3cr3t-7f3a", "BEARER-s3cr3t-91c2"
	node := startNode(t, 2)
	var basicSeen, bearerSeen atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/retry":
			if _, p, ok := r.BasicAuth(); ok && p == password {
				basicSeen.Add(1)
			}
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case "/reject":
			if r.Header.Get("Authorization") == "Bearer "+bearer {
				bearerSeen.Add(1)
			}
			http.Error(w, "out of bounds", http.StatusBadRequest)
		}
	}))
	t.Cleanup(rcv.Close)
	cfg := writeConfig(t, "500ms", t.TempDir(), "64MiB",
		endpoint{name: "retry", url: rcv.URL + "/retry", extra: fmt.Sprintf("    basic_auth: {username: kata, password: %s}\n", password)},
		endpoint{name: "reject", url: rcv.URL + "/reject", extra: fmt.Sprintf("    authorization: {credentials: %s}\n", bearer)})
	m := startMonitor(t, node, "--config", cfg, "--log-level", "trace")
	waitFor(t, 30*time.Second, 100*time.Millisecond, func() (bool, string) {
		return basicSeen.Load() >= 3 && bearerSeen.Load() >= 3, fmt.Sprintf("receiver saw basic=%d bearer=%d", basicSeen.Load(), bearerSeen.Load())
	})
	id := node.IDs()[0]
	pages := map[string]string{"log": m.log.String()}
	for _, p := range []string{"/", "/metrics", "/sandboxes", "/debug/vars?sandbox=" + id, "/debug/pprof/cmdline?sandbox=" + id} {
		_, body := m.get(p, nil)
		pages[p] = body
	}
	_, pages["/sandboxes html"] = m.get("/sandboxes", http.Header{"Accept": {"text/html"}})
	for name, text := range pages {
		for _, secret := range []string{password, bearer} {
			require.NotContains(t, text, secret, "secret leaked into %s", name)
		}
	}
	require.Contains(t, pages["log"], "level=DEBUG", "the log ran at trace level")
	faultResult(t, "2 secrets used %d/%d times by failing receivers, absent from %d KiB of trace log and %d pages",
		basicSeen.Load(), bearerSeen.Load(), len(pages["log"])>>10, len(pages)-1)
}
