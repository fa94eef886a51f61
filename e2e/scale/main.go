// Command scale measures certops at N certificates against the crypto floor
// measured in the same run, and prints one table (also written as JSON).
//
// It uses the real parts: the Git server of the e2e tests (git http-backend
// over HTTP on loopback), etcd and kube-apiserver (e2e/peer/kubepeer), the
// SOPS codec with an age recipient, the private CA issuer with ECDSA P-256
// keys, and the reconciler as the daemon runs it. Phases: initial issuance
// from an empty repository (issue + encrypt + commit + push), a no-op pass
// after an unrelated commit, an idle poll, the renewal of 10% of the
// certificates, then the first apply of every Secret to one cluster (the
// pass after a commit that adds the cluster to certops.yaml; the apply step
// alone is its own row) and a forced pass in which nothing changed, whose
// target is zero write requests. WRITES counts the Secret writes the
// apiserver's audit log recorded during the phase. CPU s is the user+sys
// time of this process (not of the peers) during the phase: the machine
// may be shared, so wall time alone misleads. Peak RSS is the process'
// high-water mark (VmHWM) after each phase.
//
// The peers' binaries are found as the e2e tests find them
// (CERTOPS_TOOLS_BIN, default ~/.cache/certops/tools/bin; `make tools`).
//
//	go run ./e2e/scale -n 1000,10000 -json bench.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"testing/fstest"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"certops.dev/certops/e2e/peer"
	"certops.dev/certops/e2e/peer/kubepeer"
	"certops.dev/certops/internal/gctune"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/reconciler"
	"certops.dev/certops/reconciler/issuer"
	"certops.dev/certops/reconciler/issuer/ca"
	"certops.dev/certops/reconciler/issuer/selfsigned"
	"certops.dev/certops/sops"
	"certops.dev/certops/spec"
)

type row struct {
	N          int     `json:"n"`
	Phase      string  `json:"phase"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpuSeconds"`
	// PeerCPUSeconds is the CPU the git server and the apiserver and etcd
	// used meanwhile (peerCPUSeconds).
	PeerCPUSeconds float64 `json:"peerCPUSeconds"`
	PerSecond      float64 `json:"certificatesPerSecond,omitempty"`
	// SecretWrites is set on the phases that apply to the cluster.
	SecretWrites *int    `json:"secretWrites,omitempty"`
	PeakRSSMiB   float64 `json:"peakRSSMiB"`
	VsFloor      float64 `json:"ratioToAllCoresFloor,omitempty"`
}

func main() {
	ns := flag.String("n", "1000,10000", "comma-separated certificate counts")
	jsonOut := flag.String("json", "", "also write the table as JSON to this file")
	floorN := flag.Int("floor-n", 400, "certificates used to measure the crypto floor")
	flag.StringVar(&profilePhase, "cpuprofile-phase", "", "write a CPU profile of the phases whose name starts with this (e.g. \"no-op\") to scale-<N>.pprof")
	flag.IntVar(&apiserverProfileSeconds, "apiserver-profile-seconds", 20, "with -cpuprofile-phase, also profile the kube-apiserver for the first this many seconds of those phases, into scale-<N>-apiserver.pprof")
	heapProfile := flag.String("heapprofile", "", "write a heap profile taken at the largest live heap of the run to this file, one per phase to this file with -<N>-<phase number> before its extension, and one of what the reconciler keeps between passes, after a collection at the end of each N, with -<N>-kept")
	memLimit := flag.Int("memlimit-mib", 0, "set the Go runtime's soft memory limit of this process (GOMEMLIMIT, which the peers would inherit) to this many MiB; 0 leaves it unset")
	gcPercent := flag.Int("gcpercent", 0, "set the Go collector's target percentage of this process (GOGC, which the peers would inherit) to this; 0 does what certops run does (GOGC, else 75)")
	flag.BoolVar(&releaseFree, "release", true, "return free heap memory to the OS after a pass that allocated more than is live, as certops run does (false leaves it to the runtime)")
	memProfileRate := flag.Int("memprofilerate", 0, "with -heapprofile, sample one allocation per this many bytes (runtime.MemProfileRate; default 512 KiB); a few KiB attribute the heap exactly but slow the run")
	flag.Parse()
	if *memProfileRate > 0 {
		runtime.MemProfileRate = *memProfileRate
	}
	if *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit) << 20)
	}
	if *gcPercent > 0 {
		debug.SetGCPercent(*gcPercent)
	} else {
		gctune.Apply(os.Getenv)
	}
	rssStop := make(chan struct{})
	go watchRSS(rssStop)
	baseAnon, baseFile := residentKiB()
	heapFile = *heapProfile
	if *heapProfile != "" {
		stop := make(chan struct{})
		defer close(stop)
		go watchHeap(*heapProfile, stop)
	}
	log.SetFlags(0)
	h = newHarness()
	defer h.Close()

	id, err := age.GenerateX25519Identity()
	check(err)
	codec := newCodec(id)
	root := newRoot()

	cpu0 := cpuSeconds()
	floor1 := floor(codec, id.Recipient().String(), root, *floorN, 1)
	cpu1 := cpuSeconds()
	floorAll := floor(codec, id.Recipient().String(), root, *floorN, runtime.GOMAXPROCS(0))
	cpu2 := cpuSeconds()
	// Per certificate, like WALL s on these two rows.
	rows := []row{
		{Phase: "crypto floor, 1 core", Seconds: 1 / floor1, CPUSeconds: (cpu1 - cpu0) / float64(*floorN), PerSecond: floor1, PeakRSSMiB: peakRSS()},
		{Phase: fmt.Sprintf("crypto floor, %d cores", runtime.GOMAXPROCS(0)), Seconds: 1 / floorAll, CPUSeconds: (cpu2 - cpu1) / float64(*floorN), PerSecond: floorAll, PeakRSSMiB: peakRSS()},
	}

	peers := startPeers(h)
	missed := false
	var counts []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		counts = append(counts, n)
		rs, ok := run(n, id, codec, floorAll, peers)
		rows = append(rows, rs...)
		missed = missed || !ok
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tPHASE\tWALL s\tCPU s\tPEERS CPU s\tCERTS/s\tWRITES\tPEAK RSS MiB\tvs FLOOR\t")
	for _, r := range rows {
		n, ratio := "-", "-"
		if r.N > 0 {
			n = strconv.Itoa(r.N)
		}
		if r.VsFloor > 0 {
			ratio = fmt.Sprintf("%.2f×", r.VsFloor)
		}
		per := "-"
		if r.PerSecond > 0 {
			per = fmt.Sprintf("%.0f", r.PerSecond)
		}
		writes := "-"
		if r.SecretWrites != nil {
			writes = strconv.Itoa(*r.SecretWrites)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.3f\t%s\t%s\t%.0f\t%s\t\n", n, r.Phase, r.Seconds, r.CPUSeconds, r.PeerCPUSeconds, per, writes, r.PeakRSSMiB, ratio)
	}
	check(tw.Flush())
	close(rssStop)
	fmt.Printf("resident at start: %.0f MiB anonymous + %.0f MiB file-backed\n%s\n", float64(baseAnon)/1024, float64(baseFile)/1024, &peakMem)
	if largest := slices.Max(counts); largest > 0 {
		anon, file := peakMem.resident()
		fmt.Printf("per certificate at the peak, above the start, over the largest N (%d): %.2f KiB of the whole resident set, %.2f KiB anonymous (1 KiB = 1,024 bytes)\n",
			largest, (float64(anon+file)/1024-float64(baseAnon+baseFile))/float64(largest), (float64(anon)/1024-float64(baseAnon))/float64(largest))
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		check(os.WriteFile(*jsonOut, b, 0o644))
	}
	if missed {
		h.Fatalf("scale: a pass in which nothing changed wrote to the cluster (see WRITES)")
	}
}

func newCodec(id *age.X25519Identity) *sops.Codec {
	trust, err := sops.NewTrust([]string{id.Recipient().String()}, nil)
	check(err)
	c, err := sops.New(sops.Options{Trust: trust, Identities: sops.Identities{id}})
	check(err)
	return c
}

// newRoot makes a CA for the floor measurement.
func newRoot() *ca.Issuer {
	key, _, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: "ECDSA"})
	check(err)
	ss, err := selfsigned.New(selfsigned.NewDefaultConfig())
	check(err)
	req, err := issuer.Template{CommonName: "scale root", IsCA: true, Usages: []string{"cert sign"}}.NewRequest("root", key, 10*365*24*time.Hour, nil)
	check(err)
	res, err := ss.SignSelf(context.Background(), req, key)
	check(err)
	cfg := ca.NewDefaultConfig()
	cfg.Certificate, cfg.Key = res.Leaf(), key
	iss, err := ca.New(cfg)
	check(err)
	return iss
}

// floor measures key generation + CSR + CA signature + PEM + SOPS
// encryption of the Secret, per certificate, on `workers` goroutines, and
// returns certificates per second.
func floor(codec *sops.Codec, recipient string, root *ca.Issuer, n, workers int) float64 {
	repo := fstest.MapFS{".sops.yaml": {Data: []byte("creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n    age: " + recipient + "\n")}}
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				key, keyPEM, err := issuer.GenerateKey(issuer.KeySpec{Algorithm: "ECDSA"})
				check(err)
				req, err := issuer.Template{DNSNames: []string{fmt.Sprintf("c%d.example.com", i)}}.NewRequest("c", key, 90*24*time.Hour, nil)
				check(err)
				res, err := root.Sign(context.Background(), req)
				check(err)
				manifest := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: c%d\n  namespace: default\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: %q\n  tls.key: %q\n", i, res.ChainPEM, keyPEM)
				_, err = codec.Encrypt(repo, fmt.Sprintf("secrets/default/c%d.yaml", i), []byte(manifest))
				check(err)
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// peers are the servers every N runs against; each N gets its own
// repository and namespaces.
type peers struct {
	git  *peer.Git
	kube *kubepeer.Kube
	ns   corev1client.NamespaceInterface
}

func startPeers(h *harness) *peers {
	h.starting.Lock()
	defer h.starting.Unlock()
	g := peer.StartGit(h, peer.GitOptions{})
	k := kubepeer.StartKube(h)
	cs, err := kubernetes.NewForConfig(k.Config)
	check(err)
	return &peers{git: g, kube: k, ns: cs.CoreV1().Namespaces()}
}

// run measures the reconciler phases at n certificates. ok is false when a
// pass in which nothing changed wrote to the cluster.
func run(n int, id *age.X25519Identity, codec *sops.Codec, floorAll float64, p *peers) (rows []row, ok bool) {
	dir := h.TempDir()
	work := filepath.Join(dir, "work")
	check(os.MkdirAll(filepath.Join(work, "certificates"), 0o755))
	write := func(p, s string) {
		check(os.MkdirAll(filepath.Dir(p), 0o755))
		check(os.WriteFile(p, []byte(s), 0o644))
	}
	write(filepath.Join(work, ".sops.yaml"), "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: "+id.Recipient().String()+"\n")
	write(filepath.Join(work, "issuers/root.yaml"), "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: root}\nspec: {selfSigned: {}}\n")
	write(filepath.Join(work, "issuers/ca.yaml"), "apiVersion: certops.dev/v1alpha1\nkind: Issuer\nmetadata: {name: ca}\nspec: {ca: {secretName: root-ca}}\n")
	write(filepath.Join(work, "certificates/root-ca.yaml"), "apiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: root-ca}\nspec: {isCA: true, commonName: root, duration: 87600h, privateKey: {algorithm: ECDSA}, issuerRef: {name: root}, targets: []}\n")
	const perFile = 100 // several documents per file, as teams group them
	// One namespace per team file; the N is in the name so that every N
	// starts from an empty namespace in the shared cluster.
	namespace := func(f int) string { return fmt.Sprintf("scale%d-team-%03d", n, f) }
	for f := 0; f*perFile < n; f++ {
		var b strings.Builder
		for i := f * perFile; i < min(n, (f+1)*perFile); i++ {
			fmt.Fprintf(&b, "---\napiVersion: certops.dev/v1alpha1\nkind: Certificate\nmetadata: {name: c%d, namespace: %s}\nspec: {dnsNames: [c%d.example.com], privateKey: {algorithm: ECDSA}, issuerRef: {name: ca}}\n", i, namespace(f), i)
		}
		write(filepath.Join(work, fmt.Sprintf("certificates/team-%03d.yaml", f)), b.String())
		_, err := p.ns.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace(f)}}, metav1.CreateOptions{})
		check(err)
	}
	repoName := fmt.Sprintf("scale-%d.git", n)
	remote := p.git.CreateRepo(h, repoName)
	gitRun(work, "init", "-q", "-b", "main")
	gitRun(work, "add", "-A")
	gitRun(work, "commit", "-qm", "specs")
	gitRun(work, "push", "-q", remote, "HEAD:main")

	repo, err := gitsource.Open(context.Background(), gitsource.Options{URL: p.git.URL("http", repoName),
		CacheDir: filepath.Join(dir, "cache"), Author: gitsource.Identity{Name: "certops", Email: "certops@localhost"}})
	check(err)
	apply := &applier{}
	rec, err := reconciler.New(reconciler.Options{Source: repo, Crypter: codec, StateDir: filepath.Join(dir, "state"), Applier: apply,
		Issuers: map[string]reconciler.IssuerFactory{
			"selfSigned": func(context.Context, *spec.Issuer, reconciler.IssuerEnv) (issuer.Issuer, error) {
				return selfsigned.New(selfsigned.NewDefaultConfig())
			},
			"ca": func(_ context.Context, _ *spec.Issuer, env reconciler.IssuerEnv) (issuer.Issuer, error) {
				cfg := ca.NewDefaultConfig()
				cfg.Certificate, cfg.Chain, cfg.Key = env.CA.Chain[0], env.CA.Chain[1:], env.CA.Key
				return ca.New(cfg)
			},
		}})
	check(err)
	secretWrites := func() int { return p.kube.WriteCount(h, "secrets") }
	// phase runs one pass after mod and returns its report and how many
	// Secret writes the apiserver received meanwhile.
	phase := func(name string, force bool, certs int, mod func()) (*reconciler.Report, int) {
		if mod != nil {
			mod()
		}
		var prof *os.File
		if profilePhase != "" && strings.HasPrefix(name, profilePhase) {
			prof, err = os.Create(fmt.Sprintf("scale-%d.pprof", n))
			check(err)
			check(pprof.StartCPUProfile(prof))
			go profileAPIServer(p.kube, fmt.Sprintf("scale-%d-apiserver.pprof", n))
		}
		phaseName := fmt.Sprintf("%d-%d", n, len(rows)+1)
		heapPhase.Store(&phaseName)
		writes0 := secretWrites()
		cpu0, peer0 := cpuSeconds(), peerCPUSeconds()
		release.BeforePass()
		start := time.Now()
		rep := rec.Pass(context.Background(), force)
		// As certops run does after each pass, and counted in the phase.
		if releaseFree {
			release.AfterPass()
		}
		secs := time.Since(start).Seconds()
		cpu, peerCPU := cpuSeconds()-cpu0, peerCPUSeconds()-peer0
		if prof != nil {
			pprof.StopCPUProfile()
			check(prof.Close())
		}
		writes := secretWrites() - writes0
		if rep.Error != "" || rep.Failed() > 0 {
			for _, c := range rep.Results {
				if c.Error != "" {
					h.Fatalf("%s at %d: %s (%d failed), e.g. %s: %s", name, n, rep.Error, rep.Failed(), c.Name, c.Error)
				}
			}
			h.Fatalf("%s at %d: %s", name, n, rep.Error)
		}
		if len(rep.Problems) > 0 {
			h.Fatalf("%s at %d: %d problems in the specs, e.g. %v", name, n, len(rep.Problems), rep.Problems[0])
		}
		if rep.Apply != nil && len(rep.Apply.Errors) > 0 {
			h.Fatalf("%s at %d: %d Secrets not applied, e.g. %v", name, n, len(rep.Apply.Errors), rep.Apply.Errors[0])
		}
		r := row{N: n, Phase: name, Seconds: secs, CPUSeconds: cpu, PeerCPUSeconds: peerCPU, PeakRSSMiB: peakRSS()}
		if certs > 0 {
			r.PerSecond = float64(certs) / secs
			r.VsFloor = floorAll / r.PerSecond
		}
		if rep.Apply != nil {
			r.SecretWrites = &writes
		}
		rows = append(rows, r)
		log.Printf("► %d %s: %.2fs, %.2f CPU s", n, name, secs, cpu)
		return rep, writes
	}
	phase("initial issuance (issue+encrypt+commit+push)", true, n+1, nil)
	phase("no-op pass after an unrelated commit", false, 0, func() {
		gitRun(work, "pull", "-q", remote, "main")
		write(filepath.Join(work, "README.md"), "certificates\n")
		gitRun(work, "add", "-A")
		gitRun(work, "commit", "-qm", "docs")
		gitRun(work, "push", "-q", remote, "HEAD:main")
	})
	phase("idle poll", false, 0, nil)
	renewN := n / 10
	phase("renewal of 10%", false, renewN, func() {
		for f := 0; f*perFile < renewN; f++ {
			p := filepath.Join(work, fmt.Sprintf("certificates/team-%03d.yaml", f))
			b, err := os.ReadFile(p)
			check(err)
			write(p, strings.ReplaceAll(string(b), "metadata: {name: ", "metadata: {annotations: {certops.dev/renew: \"1\"}, name: "))
		}
		gitRun(work, "add", "-A")
		gitRun(work, "commit", "-qm", "renew 10%")
		gitRun(work, "push", "-q", remote, "HEAD:main")
	})

	// The cluster step. The client's rate limit is raised for bulk apply as
	// BenchmarkApply1000 (reconciler/kube) does: the default 50 QPS would
	// bound the first apply at about 50 Secrets/s. The cluster is limited
	// to this N's namespaces, or pruning would delete the Secrets an
	// earlier N applied to the same apiserver.
	var nss []string
	for f := 0; f*perFile < n; f++ {
		nss = append(nss, namespace(f))
	}
	rep, _ := phase("first apply (pass after a commit adds the cluster)", false, n, func() {
		gitRun(work, "pull", "-q", remote, "main")
		write(filepath.Join(work, "certops.yaml"), "apiVersion: certops.dev/v1alpha1\nkind: Config\nspec:\n  clusters:\n"+
			"    - name: bench\n      kubeconfig: {path: "+strconv.Quote(p.kube.Kubeconfig)+"}\n      namespaces: ["+strings.Join(nss, ", ")+"]\n"+
			"      default: true\n      prune: true\n      qps: 5000\n      burst: 10000\n")
		gitRun(work, "add", "-A")
		gitRun(work, "commit", "-qm", "apply to the bench cluster")
		gitRun(work, "push", "-q", remote, "HEAD:main")
	})
	if rep.Apply == nil || rep.Apply.Applied != n {
		h.Fatalf("first apply at %d: applied %+v, want %d", n, rep.Apply, n)
	}
	if rep.Pushed != "" {
		log.Printf("► %d first apply: the pass also pushed commit %s", n, rep.Pushed)
	}
	// The pass applies what was issued before: a ratio to the crypto floor
	// would mean nothing here.
	rows[len(rows)-1].VsFloor = 0
	wall, cpu, peerCPU := apply.last()
	rows = append(rows, row{N: n, Phase: "first apply: the apply step alone", Seconds: wall, CPUSeconds: cpu, PeerCPUSeconds: peerCPU, PerSecond: float64(n) / wall,
		SecretWrites: rows[len(rows)-1].SecretWrites, PeakRSSMiB: peakRSS()})

	rep, writes := phase("unchanged apply (forced pass, nothing changed)", true, 0, nil)
	if rep.Apply == nil || rep.Apply.Unchanged != n {
		h.Fatalf("unchanged apply at %d: %+v, want %d unchanged", n, rep.Apply, n)
	}
	wall, cpu, peerCPU = apply.last()
	rows = append(rows, row{N: n, Phase: "unchanged apply: the apply step alone", Seconds: wall, CPUSeconds: cpu, PeerCPUSeconds: peerCPU, PerSecond: float64(n) / wall,
		SecretWrites: &writes, PeakRSSMiB: peakRSS()})
	if writes != 0 {
		log.Printf("► %d unchanged apply: %d Secret writes, want 0", n, writes)
	}
	if heapFile != "" {
		runtime.GC()
		ext := filepath.Ext(heapFile)
		writeHeapProfile(fmt.Sprintf("%s-%d-kept%s", strings.TrimSuffix(heapFile, ext), n, ext))
		runtime.KeepAlive(rec)
	}
	return rows, writes == 0
}

var (
	heapFile                string
	profilePhase            string
	apiserverProfileSeconds int
	// release returns free memory to the OS after each pass, as certops
	// run does; -release=false leaves it to the runtime.
	release     gctune.Releaser
	releaseFree = true
)

func gitRun(dir string, args ...string) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=bench",
		"GIT_AUTHOR_EMAIL=bench@example.com", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		h.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// peakRSS is the process' resident high-water mark in MiB.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// h runs the peers' cleanups when the command fails or ends.
var h *harness

func check(err error) {
	if err != nil {
		h.Fatalf("scale: %v", err)
	}
}
