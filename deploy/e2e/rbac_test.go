package e2e

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// agentToken is a TokenRequest token of the agent's ServiceAccount, as the
// kubelet mounts into the agent's pods.
func agentToken(t *testing.T, c *cluster) string {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(releaseNS).CreateToken(context.Background(), releaseName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", releaseNS, releaseName, err)
	}
	return tr.Status.Token
}

// ensureNode creates a Node object (no kubelet runs: the object is enough for
// the API server to bind pods to it and for the agent to get it).
func ensureNode(t *testing.T, c *cluster, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}}}
	if _, err := c.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestAgentRBAC checks the chart's RBAC with the API server's own
// authorizer: SubjectAccessReviews for the agent's ServiceAccount, then real
// requests with a TokenRequest token of it.
func TestAgentRBAC(t *testing.T) {
	c := defaultRelease(t)
	ensureNode(t, c, agentNode)
	ctx := context.Background()
	user := "system:serviceaccount:" + releaseNS + ":" + releaseName
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"}
	nodeSel := &authorizationv1.FieldSelectorAttributes{RawSelector: "spec.nodeName=" + agentNode}
	for _, tc := range []struct {
		name  string
		attrs authorizationv1.ResourceAttributes
		allow bool
	}{
		{"list its node's pods", authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods", FieldSelector: nodeSel}, true},
		{"watch its node's pods", authorizationv1.ResourceAttributes{Verb: "watch", Resource: "pods", FieldSelector: nodeSel}, true},
		{"get its node", authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Name: agentNode}, true},
		{"read a secret", authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: releaseNS, Name: "sh.helm.release.v1." + releaseName + ".v1"}, false},
		{"list secrets", authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{"exec into a pod", authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "default", Name: "any"}, false},
		{"exec into a pod (websocket)", authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Subresource: "exec", Namespace: "default", Name: "any"}, false},
		{"update a pod", authorizationv1.ResourceAttributes{Verb: "update", Resource: "pods", Namespace: "default", Name: "any"}, false},
		{"list nodes", authorizationv1.ResourceAttributes{Verb: "list", Resource: "nodes"}, false},
		{"proxy to a kubelet", authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: agentNode}, false},
		// RBAC has no field selectors: a grant to list pods with the node's
		// selector is a grant to list every pod. The agent never asks for
		// more (TestAgentInCluster reads the audit log); docs/deploy.md says so.
		{"list pods cluster-wide (RBAC cannot refuse it)", authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := tc.attrs
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &attrs}}
			got, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != tc.allow {
				t.Errorf("allowed = %v (%s %s), want %v", got.Status.Allowed, got.Status.Reason, got.Status.EvaluationError, tc.allow)
			}
		})
	}

	// The same with the ServiceAccount's own token.
	cfg := &rest.Config{Host: c.URL, BearerToken: agentToken(t, c), TLSClientConfig: rest.TLSClientConfig{CAData: c.CA}}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sel := metav1.ListOptions{FieldSelector: "spec.nodeName=" + agentNode}
	if _, err := sa.CoreV1().Pods("").List(ctx, sel); err != nil {
		t.Errorf("list its node's pods: %v", err)
	}
	w, err := sa.CoreV1().Pods("").Watch(ctx, sel)
	if err != nil {
		t.Errorf("watch its node's pods: %v", err)
	} else {
		w.Stop()
	}
	if _, err := sa.CoreV1().Nodes().Get(ctx, agentNode, metav1.GetOptions{}); err != nil {
		t.Errorf("get its node: %v", err)
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", what, err)
		}
	}
	_, err = sa.CoreV1().Secrets(releaseNS).Get(ctx, "sh.helm.release.v1."+releaseName+".v1", metav1.GetOptions{})
	forbidden("get the release's secret", err)
	_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	forbidden("list secrets", err)
	err = sa.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name("any").SubResource("exec").
		Param("command", "true").Param("stdout", "true").Do(ctx).Error()
	forbidden("exec into a pod", err)
	_, err = sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	forbidden("list nodes", err)
	err = sa.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + agentNode + "/proxy/pods").Do(ctx).Error()
	forbidden("the kubelet's /pods through the node proxy", err)
}
