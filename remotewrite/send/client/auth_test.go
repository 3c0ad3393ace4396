package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/remotewrite/codec"
	"github.com/kata-containers/kata-monitor/remotewrite/config"
	"github.com/kata-containers/kata-monitor/remotewrite/internal/rwtest"
)

// These tests load remote_write blocks shaped as in Prometheus's
// configuration documentation and check, on local servers only, the
// authentication the receiver sees. No test dials out.

// loadBlock decodes one remote_write entry strictly, defaults and
// validates it, and builds its client.
func loadBlock(t *testing.T, doc string) (config.Config, *Client) {
	t.Helper()
	var c config.Config
	require.NoError(t, rwtest.DecodeStrict(doc, &c), doc)
	c.ApplyDefaults()
	require.NoError(t, c.Validate(), doc)
	rt, err := c.NewRoundTripper()
	require.NoError(t, err)
	return c, New(c, rt, "kata-monitor/test", func(string, time.Duration) {})
}

// tokenServer is an OAuth2 token endpoint (RFC 6749 client credentials):
// it checks the client's credentials and issues "token-for-<secret>", so a
// test can tell which secret the client used.
type tokenServer struct {
	srv   *httptest.Server
	mu    sync.Mutex
	forms []map[string]string
}

func newTokenServer(t *testing.T, clientID string) *tokenServer {
	ts := &tokenServer{}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		form := map[string]string{"client_id": id}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		ts.mu.Lock()
		ts.forms = append(ts.forms, form)
		ts.mu.Unlock()
		if r.PostForm.Get("grant_type") != "client_credentials" || id != clientID {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "token-for-" + secret, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) requests() []map[string]string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]map[string]string(nil), ts.forms...)
}

// TestAuthOAuth2 is the oauth2 block of Prometheus's documentation
// (client_id, client_secret_file, scopes, token_url, endpoint_params): the
// token comes from the token endpoint and reaches the receiver as Bearer; a
// rotated client_secret_file is read again (common re-reads it per request)
// and yields a new token without a restart.
func TestAuthOAuth2(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	writeFile(t, secretFile, "s1\n")
	ts := newTokenServer(t, "kata-monitor")
	rc := newReceiver(t, nil).Start()
	_, c := loadBlock(t, `
url: `+rc.URL()+`
oauth2:
  client_id: kata-monitor
  client_secret_file: `+secretFile+`
  scopes: [metrics.write]
  token_url: `+ts.srv.URL+`/oauth2/token
  endpoint_params:
    audience: receiver
`)
	data := oneBlock(t)
	require.NoError(t, c.Store(context.Background(), data, codec.FormatV1))
	require.NoError(t, c.Store(context.Background(), data, codec.FormatV1))
	writeFile(t, secretFile, "s2\n")
	require.NoError(t, c.Store(context.Background(), data, codec.FormatV1))

	got := rc.Requests()
	require.Len(t, got, 3)
	require.Equal(t, "Bearer token-for-s1", got[0].Header.Get("Authorization"))
	require.Equal(t, "Bearer token-for-s1", got[1].Header.Get("Authorization"), "the token is cached")
	require.Equal(t, "Bearer token-for-s2", got[2].Header.Get("Authorization"), "a rotated secret file is read again")
	forms := ts.requests()
	require.Len(t, forms, 2, "one token per secret")
	require.Equal(t, "metrics.write", forms[0]["scope"])
	require.Equal(t, "receiver", forms[0]["audience"])
}

// TestAuthSecretFilesRotate: basic_auth password_file and authorization
// credentials_file are read on every request, so rotation needs no
// restart (prometheus/common's round trippers do this; this keeps it so).
func TestAuthSecretFilesRotate(t *testing.T) {
	dir := t.TempDir()
	pw, tok := filepath.Join(dir, "pw"), filepath.Join(dir, "tok")
	writeFile(t, pw, "pw1")
	writeFile(t, tok, "tok1")
	for _, tt := range []struct {
		name, block, file, rotated string
		want                       []string
	}{
		{"basic_auth", "basic_auth:\n  username: kata\n  password_file: " + pw, pw, "pw2",
			[]string{"Basic a2F0YTpwdzE=", "Basic a2F0YTpwdzI="}}, // kata:pw1, kata:pw2
		{"authorization", "authorization:\n  type: Bearer\n  credentials_file: " + tok, tok, "tok2",
			[]string{"Bearer tok1", "Bearer tok2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil).Start()
			_, c := loadBlock(t, "url: "+rc.URL()+"\n"+tt.block+"\n")
			require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
			writeFile(t, tt.file, tt.rotated)
			require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
			got := rc.Requests()
			require.Len(t, got, 2)
			for i, want := range tt.want {
				require.Equal(t, want, got[i].Header.Get("Authorization"), "request %d", i)
			}
		})
	}
}

// sigv4Receiver verifies AWS Signature Version 4 as the service does:
// from the received request alone (its SignedHeaders, X-Amz-Date and body
// hash) it signs again with aws-sdk-go-v2's signer, the one
// prometheus/sigv4 uses, and compares the signatures.
func sigv4Receiver(t *testing.T, accessKey, secretKey, region, service string) (*httptest.Server, func() []error) {
	var (
		mu   sync.Mutex
		errs []error
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := verifySigV4(r, body, aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}, region, service)
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []error { mu.Lock(); defer mu.Unlock(); return append([]error(nil), errs...) }
}

type sigv4Error string

func (e sigv4Error) Error() string { return string(e) }

func verifySigV4(r *http.Request, body []byte, creds aws.Credentials, region, service string) error {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return sigv4Error("no SigV4 Authorization header: " + auth)
	}
	fields := map[string]string{}
	for _, f := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	if !strings.HasPrefix(fields["Credential"], creds.AccessKeyID+"/") || !strings.HasSuffix(fields["Credential"], "/"+region+"/"+service+"/aws4_request") {
		return sigv4Error("credential scope " + fields["Credential"])
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h != "host" && h != "content-length" {
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		return err
	}
	if want := req.Header.Get("Authorization"); want != auth {
		return sigv4Error("signature mismatch:\n got  " + auth + "\n want " + want)
	}
	return nil
}

// TestAuthSigV4 is the sigv4 block of Prometheus's documentation for Amazon
// Managed Service for Prometheus (region, access_key, secret_key): the
// receiver recomputes the signature with the same static credentials.
func TestAuthSigV4(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	const ak, sk, region = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-1"
	srv, results := sigv4Receiver(t, ak, sk, region, "aps")
	_, c := loadBlock(t, `
url: `+srv.URL+`/workspaces/ws-1234/api/v1/remote_write
headers:
  X-Scope-OrgID: team-a
sigv4:
  region: `+region+`
  access_key: `+ak+`
  secret_key: `+sk+`
queue_config:
  max_samples_per_send: 1000
  max_shards: 200
  capacity: 2500
`)
	require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
	errs := results()
	require.Len(t, errs, 1)
	require.NoError(t, errs[0])

	// The check is real: a client holding another secret is refused.
	_, bad := loadBlock(t, "url: "+srv.URL+"/api/v1/write\nsigv4:\n  region: "+region+"\n  access_key: "+ak+"\n  secret_key: other\n")
	err := bad.Store(context.Background(), oneBlock(t), codec.FormatV1)
	require.ErrorContains(t, err, "403")
	require.ErrorContains(t, results()[1], "signature mismatch")
}

// TestAuthAzureAD: the managed_identity block of Prometheus's documentation
// for Azure Monitor. The managed identity endpoint is the one Azure App
// Service announces in IDENTITY_ENDPOINT/IDENTITY_HEADER, which lets a
// local server stand in for it; the receiver sees its token as Bearer.
// The oauth, workload_identity, sdk and certificate variants talk to Entra
// ID's fixed https authority (login.microsoftonline.com), which cannot be
// pointed at a local server: they are only loaded, validated and built.
func TestAuthAzureAD(t *testing.T) {
	// A client id of its own for each run: the Azure SDK keeps managed
	// identity tokens in a process-wide cache keyed by client id and
	// resource, so with -count=2 a fixed id is answered from the first
	// run's token without asking the endpoint below.
	suffix := make([]byte, 6)
	_, err := rand.Read(suffix)
	require.NoError(t, err)
	clientID := "00000000-0000-0000-0000-" + hex.EncodeToString(suffix)
	var (
		mu       sync.Mutex
		resource []string
	)
	msi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-IDENTITY-HEADER") != "identity-secret" || r.URL.Query().Get("client_id") != clientID {
			http.Error(w, "bad identity request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		resource = append(resource, r.URL.Query().Get("resource"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": "azure-token", "token_type": "Bearer", "client_id": clientID,
			"expires_on": time.Now().Add(time.Hour).Unix(), "resource": r.URL.Query().Get("resource"),
		})
	}))
	t.Cleanup(msi.Close)
	t.Setenv("IDENTITY_ENDPOINT", msi.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "identity-secret")

	rc := newReceiver(t, nil).Start()
	_, c := loadBlock(t, `
url: `+rc.URL()+`
azuread:
  cloud: AzurePublic
  managed_identity:
    client_id: `+clientID+`
`)
	require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
	got := rc.Requests()
	require.Len(t, got, 1)
	require.Equal(t, "Bearer azure-token", got[0].Header.Get("Authorization"))
	mu.Lock()
	require.Equal(t, []string{"https://monitor.azure.com/"}, resource, "Azure Monitor's ingestion audience")
	mu.Unlock()

	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	writeFile(t, tokenFile, "jwt")
	for name, block := range map[string]string{
		"oauth":             "azuread:\n  cloud: AzureGovernment\n  oauth:\n    client_id: " + clientID + "\n    client_secret: s\n    tenant_id: 00000000-a12b-3cd4-e56f-000000000000\n",
		"workload_identity": "azuread:\n  workload_identity:\n    client_id: " + clientID + "\n    tenant_id: 00000000-a12b-3cd4-e56f-000000000000\n    token_file_path: " + tokenFile + "\n",
		"sdk":               "azuread:\n  sdk:\n    tenant_id: 00000000-a12b-3cd4-e56f-000000000000\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := loadBlock(t, "url: https://ingest.monitor.azure.com/dataCollectionRules/dcr-1/streams/Microsoft-PrometheusMetrics/api/v1/write\n"+block)
			require.NotNil(t, c.AzureADConfig)
		})
	}
}

// TestAuthGoogleIAM: the google_iam block of Prometheus's documentation
// (credentials_file) with a service account key whose token_uri is a local
// OAuth2 endpoint; the receiver sees the token as Bearer.
func TestAuthGoogleIAM(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1") // never the real metadata server
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	var (
		mu     sync.Mutex
		grants []string
	)
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		grants = append(grants, r.PostForm.Get("grant_type"))
		mu.Unlock()
		if r.PostForm.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "google-token", "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(token.Close)
	sa, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "kata-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "kata-monitor@kata-test.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": token.URL + "/token", "universe_domain": "googleapis.com",
	})
	require.NoError(t, err)
	credFile := filepath.Join(t.TempDir(), "sa.json")
	require.NoError(t, os.WriteFile(credFile, sa, 0o600))

	rc := newReceiver(t, nil).Start()
	_, c := loadBlock(t, "url: "+rc.URL()+"\ngoogle_iam:\n  credentials_file: "+credFile+"\n")
	require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
	got := rc.Requests()
	require.Len(t, got, 1)
	require.Equal(t, "Bearer google-token", got[0].Header.Get("Authorization"))
	mu.Lock()
	require.Equal(t, []string{"urn:ietf:params:oauth:grant-type:jwt-bearer"}, grants)
	mu.Unlock()
}

// TestFollowRedirects: by default a 308 is handed back (the block stays
// queued for retry and nothing reaches the other path); with
// follow_redirects: true the body is replayed to the new location.
func TestFollowRedirects(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "follow_redirects"}[follow], func(t *testing.T) {
			rc := newReceiver(t, func(_ int, r *http.Request) (int, map[string]string) {
				if r.URL.Path == "/old/write" {
					return http.StatusPermanentRedirect, map[string]string{"Location": "/api/v1/write"}
				}
				return http.StatusNoContent, nil
			}).Start()
			block := "url: " + rc.Srv.URL + "/old/write\n"
			if follow {
				block += "follow_redirects: true\n"
			}
			_, c := loadBlock(t, block)
			err := c.Store(context.Background(), oneBlock(t), codec.FormatV1)
			got := rc.Requests()
			if !follow {
				var rerr RecoverableError
				require.ErrorAs(t, err, &rerr, "a redirect is retried, not dropped")
				require.ErrorContains(t, err, "redirect to /api/v1/write not followed")
				require.Len(t, got, 1)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, 2)
			require.Equal(t, http.StatusNoContent, got[1].Code)
			require.Len(t, got[1].Req.Timeseries, 1, "the body was replayed")
		})
	}
}

// TestHTTPHeadersFiles: http_headers values, secrets and files (files read
// on every request) reach the receiver.
func TestHTTPHeadersFiles(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tenant")
	writeFile(t, f, "tenant-1")
	rc := newReceiver(t, nil).Start()
	_, c := loadBlock(t, "url: "+rc.URL()+"\nhttp_headers:\n  X-Team:\n    values: [kata]\n  X-Api-Key:\n    secrets: [k3y]\n  X-Tenant:\n    files: ["+f+"]\n")
	require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
	writeFile(t, f, "tenant-2")
	require.NoError(t, c.Store(context.Background(), oneBlock(t), codec.FormatV1))
	got := rc.Requests()
	require.Len(t, got, 2)
	require.Equal(t, "kata", got[0].Header.Get("X-Team"))
	require.Equal(t, "k3y", got[0].Header.Get("X-Api-Key"))
	require.Equal(t, "tenant-1", got[0].Header.Get("X-Tenant"))
	require.Equal(t, "tenant-2", got[1].Header.Get("X-Tenant"), "header files are read per request")
}
