// Package scrapecache is kata-monitor's scrape cache: per sandbox, the
// series of its shim's exposition across rounds, keyed by the raw series
// text, so label parsing, validation, escaping, relabelling and hashing
// happen once per series, not once per sample.
//
// A shim exposes the same series every round with new values. What does
// not depend on the sandbox (names, the pull head as exposition.Series, the
// push label set as a Template with the sandbox's values as slots) is
// interned in an Env and shared by all sandboxes; a Sandbox keeps a 32-byte
// Entry per series. Parse reads one exposition (text format or
// OpenMetrics) into pull lines (exposition.Lines) and push samples; series
// that disappear are handed to the push phase for their staleness markers
// (TakeEvicted). An exposition that matches the last one but for its
// values is replayed without the lexer: its layout (the bytes but the
// values, and the parser's steps) is kept by the subpackage layout.
//
// It imports forwarder/exposition, forwarder/scrapecache/layout,
// remotewrite/series and sources; forwarder drives it.
package scrapecache
