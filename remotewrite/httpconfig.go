package remotewrite

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	commoncfg "github.com/prometheus/common/config"
)

// tlsVersion maps a min_version name to its value; "" means Go's default.
func tlsVersion(name string) (commoncfg.TLSVersion, bool) {
	switch name {
	case "":
		return 0, true
	case "TLS10":
		return commoncfg.TLSVersion(tls.VersionTLS10), true
	case "TLS11":
		return commoncfg.TLSVersion(tls.VersionTLS11), true
	case "TLS12":
		return commoncfg.TLSVersion(tls.VersionTLS12), true
	case "TLS13":
		return commoncfg.TLSVersion(tls.VersionTLS13), true
	}
	return 0, false
}

// httpClientConfig converts our Prometheus-shaped blocks into
// prometheus/common's HTTPClientConfig, whose round trippers already do TLS
// (with reload of changed files), basic auth and authorization (re-reading
// *_file secrets per request) and proxies. Custom headers are not passed
// here: common refuses User-Agent, which we allow, so the client sets them.
func (c Config) httpClientConfig() (commoncfg.HTTPClientConfig, error) {
	minVersion, ok := tlsVersion(c.TLSConfig.MinVersion)
	if !ok {
		return commoncfg.HTTPClientConfig{}, fmt.Errorf("tls_config.min_version: unknown %q", c.TLSConfig.MinVersion)
	}
	hc := commoncfg.HTTPClientConfig{
		TLSConfig: commoncfg.TLSConfig{
			CAFile:             c.TLSConfig.CAFile,
			CertFile:           c.TLSConfig.CertFile,
			KeyFile:            c.TLSConfig.KeyFile,
			ServerName:         c.TLSConfig.ServerName,
			InsecureSkipVerify: c.TLSConfig.InsecureSkipVerify,
			MinVersion:         minVersion,
		},
		// A redirect would replay the body to a host the auth round
		// trippers would also authenticate to; receivers do not redirect
		// writes, so a 3xx is treated as an error instead.
		FollowRedirects: false,
	}
	if b := c.BasicAuth; b != nil {
		hc.BasicAuth = &commoncfg.BasicAuth{
			Username:     b.Username,
			UsernameFile: b.UsernameFile,
			Password:     commoncfg.Secret(b.Password),
			PasswordFile: b.PasswordFile,
		}
	}
	if a := c.Authorization; a != nil {
		typ := strings.TrimSpace(a.Type)
		if typ == "" {
			typ = "Bearer"
		}
		hc.Authorization = &commoncfg.Authorization{
			Type:            typ,
			Credentials:     commoncfg.Secret(a.Credentials),
			CredentialsFile: a.CredentialsFile,
		}
	}
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil {
			return commoncfg.HTTPClientConfig{}, fmt.Errorf("proxy_url: %w", err)
		}
		hc.ProxyURL = commoncfg.URL{URL: u}
	}
	if err := hc.Validate(); err != nil {
		return commoncfg.HTTPClientConfig{}, fmt.Errorf("http client: %w", err)
	}
	return hc, nil
}

// newRoundTripper builds the endpoint's transport from its config.
func (c Config) newRoundTripper() (http.RoundTripper, error) {
	hc, err := c.httpClientConfig()
	if err != nil {
		return nil, err
	}
	rt, err := commoncfg.NewRoundTripperFromConfig(hc, "remote_write_"+c.Name)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	return rt, nil
}
