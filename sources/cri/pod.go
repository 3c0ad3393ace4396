// Package cri maps sandbox ids to pod metadata through the CRI RuntimeService.
package cri

// Pod is the CRI metadata of one pod sandbox.
type Pod struct {
	UID       string
	Name      string
	Namespace string
}
