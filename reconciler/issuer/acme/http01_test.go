package acme_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"certops.dev/certops/reconciler/issuer/acme"
)

func TestHTTP01Handler(t *testing.T) {
	h := acme.NewHTTP01Handler()
	if err := h.Present(context.Background(), "a.example.test", "tok123", "tok123.thumb"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(acme.HTTP01Path, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path, method string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path, method string
		code         int
		body         string
	}{
		{"/.well-known/acme-challenge/tok123", "GET", 200, "tok123.thumb"},
		{"/.well-known/acme-challenge/other", "GET", 404, ""},
		{"/.well-known/acme-challenge/tok123", "POST", 404, ""},
		{"/.well-known/acme-challenge/tok123/x", "GET", 404, ""},
	}
	for _, tt := range tests {
		code, body := get(tt.path, tt.method)
		if code != tt.code || (tt.body != "" && body != tt.body) {
			t.Errorf("%s %s: got %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.body)
		}
	}
	if err := h.CleanUp(context.Background(), "a.example.test", "tok123", ""); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/.well-known/acme-challenge/tok123", "GET"); code != 404 {
		t.Errorf("after CleanUp: got %d, want 404", code)
	}
}
