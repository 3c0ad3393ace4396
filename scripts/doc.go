// Package scripts holds no Go code: it is the home of the shell scripts the
// Makefile, the tests and operators run (install-deps.sh, build-receiver.sh,
// run-receiver.sh, fuzz.sh, gobuild.sh, image.sh) and of the tests that keep
// them working (waiting for apt's lock, the fuzz runner's retries and logs,
// the build's progress lines).
package scripts
