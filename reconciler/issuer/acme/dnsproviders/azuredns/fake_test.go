package azuredns

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeAzure plays Entra ID's token endpoint, the managed-identity endpoint
// and the ARM record-set API of one subscription and resource group, the
// way lego tests its providers against an httptest server.
type fakeAzure struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	secret    string // the client secret it accepts
	assertion string // the federated token it accepts
	expiresIn int    // lifetime of issued tokens, seconds
	issued    []string
	valid     map[string]bool
	armTokens []string // bearer tokens ARM requests carried, in order
	zones     map[string]bool
	records   map[string]*fakeRecord // "zone/rel"
	etagSeq   int
	// failNext answers the next ARM request with this status, body and Retry-After.
	failNext *fakeFailure
	// raceNextPut changes the record set just before the next PUT is
	// applied, as a concurrent writer would.
	raceNextPut string
	// echoSecret makes the token endpoint quote the presented secret in
	// its error, as a careless identity server might.
	echoSecret bool
}

type fakeRecord struct {
	etag   string
	ttl    int
	values []string
}

type fakeFailure struct {
	status     int
	code, msg  string
	retryAfter string
}

const (
	fakeTenant = "tenant-1"
	fakeClient = "client-1"
	fakeSub    = "sub-1"
	fakeRG     = "rg-1"
)

func newFakeAzure(t *testing.T) *fakeAzure {
	f := &fakeAzure{
		t:         t,
		secret:    "s3cret-Client-Value~xyz",
		expiresIn: 3600,
		valid:     map[string]bool{},
		zones:     map[string]bool{"example.com": true},
		records:   map[string]*fakeRecord{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.token)
	mux.HandleFunc("GET /msi/token", f.msi)
	mux.HandleFunc("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/dnsZones/{zone}/TXT/{rel}", f.arm)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// config returns a client-credentials configuration pointing at the fake.
func (f *fakeAzure) config() *Config {
	c := NewDefaultConfig()
	c.SubscriptionID, c.ResourceGroup, c.ZoneName = fakeSub, fakeRG, "example.com"
	c.TenantID, c.ClientID, c.ClientSecret = fakeTenant, fakeClient, f.secret
	c.Cloud.AuthorityHost = f.srv.URL + "/"
	c.Cloud.ResourceManager = f.srv.URL
	c.IMDSEndpoint = f.srv.URL + "/msi/token"
	return c
}

func (f *fakeAzure) issue(w http.ResponseWriter, expiresIn any) {
	tok := fmt.Sprintf("eyJ0eXAiOiJKV1QifQ.access-token-%d.sig", len(f.issued)+1)
	f.issued = append(f.issued, tok)
	f.valid[tok] = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "access_token": tok, "expires_in": expiresIn})
}

func (f *fakeAzure) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.PathValue("tenant") != fakeTenant || r.PostForm.Get("client_id") != fakeClient ||
		r.PostForm.Get("grant_type") != "client_credentials" || !strings.HasSuffix(r.PostForm.Get("scope"), "/.default") {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `{"error":"invalid_request","error_description":"AADSTS900144: bad request"}`)
		return
	}
	secretOK := r.PostForm.Get("client_secret") != "" && r.PostForm.Get("client_secret") == f.secret
	assertionOK := f.assertion != "" && r.PostForm.Get("client_assertion") == f.assertion &&
		r.PostForm.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	if !secretOK && !assertionOK {
		desc := "AADSTS7000215: Invalid client secret provided."
		if f.echoSecret {
			desc += " Got '" + r.PostForm.Get("client_secret") + "'."
		}
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": desc + "\r\nTrace ID: 1234"})
		return
	}
	f.issue(w, f.expiresIn)
}

// msi answers like the instance metadata service: expires_in is a string.
func (f *fakeAzure) msi(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("resource") == "" || r.URL.Query().Get("api-version") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	f.issue(w, fmt.Sprint(f.expiresIn))
}

func armErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (f *fakeAzure) arm(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Query().Get("api-version") != apiVersion {
		armErr(w, http.StatusBadRequest, "InvalidApiVersionParameter", "bad api-version")
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.armTokens = append(f.armTokens, tok)
	if !f.valid[tok] {
		armErr(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or invalid.")
		return
	}
	if ff := f.failNext; ff != nil {
		f.failNext = nil
		if ff.retryAfter != "" {
			w.Header().Set("Retry-After", ff.retryAfter)
		}
		armErr(w, ff.status, ff.code, ff.msg)
		return
	}
	if r.PathValue("sub") != fakeSub || r.PathValue("rg") != fakeRG {
		armErr(w, http.StatusNotFound, "ResourceGroupNotFound", "Resource group not found.")
		return
	}
	zone, rel := r.PathValue("zone"), r.PathValue("rel")
	if !f.zones[zone] {
		armErr(w, http.StatusNotFound, "ParentResourceNotFound", fmt.Sprintf("Can not perform requested operation on nested resource. Parent resource '%s' not found.", zone))
		return
	}
	key := zone + "/" + rel
	rec := f.records[key]
	switch r.Method {
	case http.MethodGet:
		if rec == nil {
			armErr(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The resource record '%s' does not exist in resource group '%s'.", rel, fakeRG))
			return
		}
		_ = json.NewEncoder(w).Encode(f.body(rec))
	case http.MethodPut:
		if f.raceNextPut != "" {
			v := f.raceNextPut
			f.raceNextPut = ""
			if rec == nil {
				rec = &fakeRecord{ttl: 300}
				f.records[key] = rec
			}
			rec.values = append(rec.values, v)
			rec.etag = f.nextETag()
		}
		if !f.preconditionOK(r, rec) {
			armErr(w, http.StatusPreconditionFailed, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met.")
			return
		}
		var in recordSet
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Properties.TXTRecords) == 0 {
			armErr(w, http.StatusBadRequest, "BadRequest", "bad record set")
			return
		}
		status := http.StatusOK
		if rec == nil {
			status = http.StatusCreated
			rec = &fakeRecord{}
			f.records[key] = rec
		}
		rec.ttl, rec.values, rec.etag = in.Properties.TTL, in.values(), f.nextETag()
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(f.body(rec))
	case http.MethodDelete:
		if rec == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if !f.preconditionOK(r, rec) {
			armErr(w, http.StatusPreconditionFailed, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met.")
			return
		}
		delete(f.records, key)
		w.WriteHeader(http.StatusOK)
	default:
		armErr(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

func (f *fakeAzure) preconditionOK(r *http.Request, rec *fakeRecord) bool {
	if m := r.Header.Get("If-Match"); m != "" && (rec == nil || rec.etag != m) {
		return false
	}
	if r.Header.Get("If-None-Match") == "*" && rec != nil {
		return false
	}
	return true
}

func (f *fakeAzure) nextETag() string {
	f.etagSeq++
	return fmt.Sprintf("etag-%d", f.etagSeq)
}

func (f *fakeAzure) body(rec *fakeRecord) map[string]any {
	var txt []map[string][]string
	for _, v := range rec.values {
		txt = append(txt, map[string][]string{"value": {v}})
	}
	return map[string]any{"etag": rec.etag, "properties": map[string]any{"TTL": rec.ttl, "TXTRecords": txt}}
}

// values returns the TXT values of zone/rel, nil when the set is absent.
func (f *fakeAzure) values(zone, rel string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.records[zone+"/"+rel]; r != nil {
		return slices.Clone(r.values)
	}
	return nil
}

func (f *fakeAzure) exists(zone, rel string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[zone+"/"+rel] != nil
}

func (f *fakeAzure) counts() (issued int, armTokens []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.issued), slices.Clone(f.armTokens)
}
