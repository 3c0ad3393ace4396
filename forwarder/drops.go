package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"
)

// dropReason says why samples of a round were left out. The merge keeps
// every series it can (a typed family wins over an untyped one, the first
// HELP wins, every sandbox's lines stay); what it cannot keep is counted
// per sandbox and reason, shown on /sandboxes, counted in
// kata_monitor_series_dropped_total{reason} and logged once per sandbox
// and reason while it lasts.
type dropReason uint8

const (
	// dropDuplicate: the same series twice in one exposition; the first
	// is kept (pull and push).
	dropDuplicate dropReason = iota
	// dropInvalid: an empty or non-UTF-8 name, a non-UTF-8 value, a label
	// given twice (pull and push).
	dropInvalid
	// dropInvalidForType: a histogram bucket or summary quantile whose
	// le/quantile is not a float, or a negative bucket or count: the text
	// format cannot carry it (pull only: it is pushed).
	dropInvalidForType
	// dropTypeConflict: the family has another TYPE in another sandbox
	// (the first typed one wins) and the sample cannot be written under it,
	// e.g. a bucket whose le is not a float under TYPE histogram (pull only).
	dropTypeConflict
	// dropNameClash: the family's name lands on another family in the text
	// format, e.g. a gauge x_count next to a histogram x (pull only).
	dropNameClash
	// dropEscapeClash: two names that only differ in characters a legacy
	// client cannot read become one name once escaped (underscores,
	// dots); the first family keeps it (pull answers to such clients only).
	dropEscapeClash
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropDuplicate:      "duplicate",
	dropInvalid:        "invalid",
	dropInvalidForType: "invalid_for_type",
	dropTypeConflict:   "type_conflict",
	dropNameClash:      "name_clash",
	dropEscapeClash:    "escape_clash",
}

func (r dropReason) String() string { return dropReasonNames[r] }

// dropCounts are one sandbox's dropped samples of a round, by reason.
type dropCounts [numDropReasons]int

func (d *dropCounts) any() bool {
	for _, n := range d {
		if n > 0 {
			return true
		}
	}
	return false
}

// byName returns the non-zero counts keyed by reason name (nil when none),
// the form SandboxStatus carries.
func (d *dropCounts) byName() map[string]int {
	if !d.any() {
		return nil
	}
	m := make(map[string]int, 2)
	for r, n := range d {
		if n > 0 {
			m[dropReason(r).String()] = n
		}
	}
	return m
}

func newDroppedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "series_dropped_total",
		Help: "Samples of shim series left out, by reason: duplicate and invalid (pull and push); invalid_for_type, " +
			"type_conflict and name_clash (pull only: such samples are still pushed); escape_clash (pull answers to " +
			"clients without UTF-8 names). Per sandbox on /sandboxes."},
		[]string{"reason"})
	for r := range numDropReasons {
		c.WithLabelValues(r.String())
	}
	return c
}
