package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SetListPage makes Apply and Prune list n Secrets per request until the test ends.
func SetListPage(t testing.TB, n int64) {
	old := listPage
	listPage = n
	t.Cleanup(func() { listPage = old })
}

// CreateSecret is createSecret, for tests of the create without a decoded
// answer.
func (c *Cluster) CreateSecret(ctx context.Context, s *corev1.Secret) error {
	return c.createSecret(ctx, c.client.CoreV1().Secrets(s.Namespace), s)
}

// CreateAnswer makes the request createSecret makes and returns the answer
// as the API server sent it.
func (c *Cluster) CreateAnswer(ctx context.Context, s *corev1.Secret) ([]byte, error) {
	return c.createRequest(s, metav1.CreateOptions{FieldManager: FieldManager}).Do(ctx).Raw()
}
