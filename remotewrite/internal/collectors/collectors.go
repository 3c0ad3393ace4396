// Package collectors registers a component's Prometheus collectors as one
// group, all or none, and unregisters the group again, so that a
// component closed and opened again in one process (an endpoint's queue
// or WAL) can register anew, and a registration conflict (two endpoints
// with one name) is an error, not a panic nor a half-registered set.
package collectors

import "github.com/prometheus/client_golang/prometheus"

// Group is collectors registered together on one Registerer.
type Group struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector
}

// Register registers cs on reg in order. When one fails, those registered
// before it are unregistered and its error is returned. With reg nil it
// registers nothing.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) (*Group, error) {
	g := &Group{reg: reg}
	if reg == nil {
		return g, nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			g.Unregister()
			return nil, err
		}
		g.cs = append(g.cs, c)
	}
	return g, nil
}

// Unregister unregisters the group's collectors; calling it again does
// nothing.
func (g *Group) Unregister() {
	for _, c := range g.cs {
		g.reg.Unregister(c)
	}
	g.cs = nil
}
