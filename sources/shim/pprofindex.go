package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// maxIndexBytes caps the pprof index page read for rewriting (Go's is ~2 KiB).
const maxIndexBytes = 1 << 20

// indexSandboxKey carries the sandbox id of a proxied pprof index request to
// ModifyResponse.
type indexSandboxKey struct{}

// rewriteIndex rewrites the links of a shim's /debug/pprof/ HTML index
// (net/http/pprof's, e.g. href="allocs?debug=1") so each carries
// sandbox=id: without it every link of the proxied page would answer 400.
// Only links relative to this host are touched; the id is query-escaped in
// the URL and the attribute HTML-escaped by the tokenizer's rendering.
// Anything but an uncompressed HTML 200 passes unchanged. A body over 1 MiB
// fails the request (the proxy answers 502).
func rewriteIndex(resp *http.Response, id string) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mt != "text/html" || resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIndexBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read pprof index: %w", err)
	}
	if len(body) > maxIndexBytes {
		return errors.New("pprof index over 1 MiB")
	}
	out := rewriteLinks(body, id)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// rewriteLinks returns page with sandbox=id added to the query of every
// <a href> relative to the same host; the rest of the page is copied as is.
func rewriteLinks(page []byte, id string) []byte {
	var b bytes.Buffer
	z := html.NewTokenizer(bytes.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.Bytes() // io.EOF: the whole page was read from memory
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			b.Write(z.Raw())
			continue
		}
		raw := append([]byte(nil), z.Raw()...)
		tok := z.Token()
		if tok.Data != "a" {
			b.Write(raw)
			continue
		}
		changed := false
		for i, a := range tok.Attr {
			if a.Namespace != "" || !strings.EqualFold(a.Key, "href") {
				continue
			}
			if v, ok := withSandbox(a.Val, id); ok {
				tok.Attr[i].Val, changed = v, true
			}
		}
		if !changed {
			b.Write(raw)
			continue
		}
		b.WriteString(tok.String())
	}
}

// withSandbox adds sandbox=id to href when it points at this host (no
// scheme, no host): relative ("heap?debug=1") or rooted ("/debug/...").
func withSandbox(href, id string) (string, bool) {
	u, err := url.Parse(href)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || (u.Path == "" && u.RawQuery == "") {
		return "", false
	}
	q := u.Query()
	q.Set("sandbox", id)
	u.RawQuery = q.Encode()
	return u.String(), true
}
