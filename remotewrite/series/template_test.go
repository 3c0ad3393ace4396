package series

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestTemplate(t *testing.T) {
	tm := NewTemplate([]labels.Label{{Name: "__name__", Value: "up"}, {Name: "id", Value: "x"}, {Name: "job", Value: "kata"}, {Name: "ns"}},
		[]int{-1, 0, -1, 2})
	tests := []struct {
		name  string
		vals  *Values
		want  []labels.Label
		getID string
	}{
		{"filled", NewValues("a", "unused", "default"),
			[]labels.Label{{Name: "__name__", Value: "up"}, {Name: "id", Value: "a"}, {Name: "job", Value: "kata"}, {Name: "ns", Value: "default"}}, "a"},
		{"empty slot left out", NewValues("a", "", ""), []labels.Label{{Name: "__name__", Value: "up"}, {Name: "id", Value: "a"}, {Name: "job", Value: "kata"}}, "a"},
		{"short values", NewValues("a"), []labels.Label{{Name: "__name__", Value: "up"}, {Name: "id", Value: "a"}, {Name: "job", Value: "kata"}}, "a"},
		{"nil values", nil, []labels.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "kata"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Series{Template: tm, Values: tt.vals}
			if got := s.AppendLabels(nil); !slices.Equal(got, tt.want) {
				t.Fatalf("labels %v, want %v", got, tt.want)
			}
			if got := s.Get("id"); got != tt.getID {
				t.Fatalf("Get(id) = %q, want %q", got, tt.getID)
			}
			if s.Name() != "up" || s.Get("job") != "kata" || s.Get("nope") != "" {
				t.Fatalf("Name %q, Get(job) %q", s.Name(), s.Get("job"))
			}
		})
	}
	if tm.Len() != 4 {
		t.Fatalf("Len %d", tm.Len())
	}
	// A slot's value in the given labels is ignored; __name__ as a slot.
	slotName := Series{Template: NewTemplate([]labels.Label{{Name: "__name__", Value: "ignored"}}, []int{1}), Values: NewValues("", "web")}
	if slotName.Name() != "web" {
		t.Fatalf("slot name %q", slotName.Name())
	}
	plain := Series{Labels: []labels.Label{{Name: "__name__", Value: "up"}, {Name: "a", Value: "1"}}}
	if plain.Name() != "up" || plain.Get("a") != "1" || len(plain.AppendLabels(nil)) != 2 {
		t.Fatal("plain series")
	}
}

func TestTemplateMemo(t *testing.T) {
	tm := NewTemplate(nil, nil)
	if tm.Memo() != nil {
		t.Fatal("memo before SetMemo")
	}
	if got := tm.SetMemo(1); got != 1 {
		t.Fatalf("SetMemo = %v", got)
	}
	if got := tm.SetMemo(2); got != 1 || tm.Memo() != 1 {
		t.Fatalf("second SetMemo = %v, Memo %v: the first value stays", got, tm.Memo())
	}
}

func TestNewTemplatePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"length": func() { NewTemplate([]labels.Label{{Name: "a"}}, []int{}) },
		"slot":   func() { NewTemplate([]labels.Label{{Name: "a"}}, []int{MaxSlots}) },
		"values": func() { NewValues(make([]string, MaxSlots+1)...) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
