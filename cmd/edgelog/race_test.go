//go:build race

package main

// raceBuild: the tests run with the race detector, so the edgelog binary
// they start is built with it too.
const raceBuild = true
