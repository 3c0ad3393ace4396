// Package deploy holds no Go code: it is the home of the deployment files
// (kubernetes/, systemd/, grafana/) and of the tests that keep them honest.
// Those tests decode every Kubernetes manifest strictly into the API types,
// load the shipped config files with the daemon's own loader, verify the
// systemd unit and check that every metric a Grafana dashboard queries is one
// kata-monitor or a Kata shim actually exposes.
package deploy
