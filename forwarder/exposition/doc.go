// Package exposition renders kata-monitor's pull answer: the merged text
// exposition (format 0.0.4, with the quoted UTF-8 names extension) of every
// sandbox's lines of one round.
//
// A round's lines are kept per sandbox (Lines) as the series' shared part
// (Series: the head `name{shim labels,` rendered once for all sandboxes)
// and the value, so serving a request only concatenates bytes: head, the
// sandbox's labels, value. Snapshot merges the sandboxes' families (one
// HELP/TYPE per family, the first typed one wins), leaves out what the text
// format cannot carry (counted by DropReason), and writes the answer, with
// names escaped for clients that cannot read UTF-8 names.
//
// It knows nothing of scraping or pushing; forwarder/scrapecache fills
// Lines, forwarder owns the snapshots.
package exposition
