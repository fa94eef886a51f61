package kube

import "testing"

// SetListPage makes Prune list n Secrets per request until the test ends.
func SetListPage(t testing.TB, n int64) {
	old := listPage
	listPage = n
	t.Cleanup(func() { listPage = old })
}
