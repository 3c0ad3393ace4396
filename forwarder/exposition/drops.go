package exposition

// DropReason says why samples of a round were left out. The merge keeps
// every series it can (a typed family wins over an untyped one, the first
// HELP wins, every sandbox's lines stay); what it cannot keep is counted
// per sandbox and reason, shown on /sandboxes, counted in
// kata_monitor_series_dropped_total{reason} and logged once per sandbox
// and reason while it lasts.
type DropReason uint8

const (
	// DropDuplicate: the same series twice in one exposition; the first
	// is kept (pull and push).
	DropDuplicate DropReason = iota
	// DropInvalid: an empty or non-UTF-8 name, a non-UTF-8 value, a label
	// given twice (pull and push).
	DropInvalid
	// DropInvalidForType: a histogram bucket or summary quantile whose
	// le/quantile is not a float, or a negative bucket or count: the text
	// format cannot carry it (pull only: it is pushed).
	DropInvalidForType
	// DropTypeConflict: the family has another TYPE in another sandbox
	// (the first typed one wins) and the sample cannot be written under it,
	// e.g. a bucket whose le is not a float under TYPE histogram (pull only).
	DropTypeConflict
	// DropNameClash: the family's name lands on another family in the text
	// format, e.g. a gauge x_count next to a histogram x (pull only).
	DropNameClash
	// DropEscapeClash: two names that only differ in characters a legacy
	// client cannot read become one name once escaped (underscores,
	// dots); the first family keeps it (pull answers to such clients only).
	DropEscapeClash
	// NumDropReasons is the number of reasons.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropDuplicate:      "duplicate",
	DropInvalid:        "invalid",
	DropInvalidForType: "invalid_for_type",
	DropTypeConflict:   "type_conflict",
	DropNameClash:      "name_clash",
	DropEscapeClash:    "escape_clash",
}

// String is the reason as kata_monitor_series_dropped_total names it.
func (r DropReason) String() string { return dropReasonNames[r] }

// DropCounts are one sandbox's dropped samples of a round, by reason.
type DropCounts [NumDropReasons]int

// Any reports whether a count is not zero.
func (d *DropCounts) Any() bool {
	for _, n := range d {
		if n > 0 {
			return true
		}
	}
	return false
}

// ByName returns the non-zero counts keyed by reason name (nil when
// none), the form forwarder.SandboxStatus carries.
func (d *DropCounts) ByName() map[string]int {
	if !d.Any() {
		return nil
	}
	m := make(map[string]int, 2)
	for r, n := range d {
		if n > 0 {
			m[DropReason(r).String()] = n
		}
	}
	return m
}
