package reconciler

import (
	"os"
	"syscall"
)

// CrashEnv names the environment variable of crash-safety tests: when it
// equals a crash point (before-issue, after-issue, after-commit,
// after-push), the process kills itself with SIGKILL there, as `kill -9`
// would. It is read only at those points and does nothing otherwise.
// after-issue is reached once the first batch of certificates is issued
// and before its commit; in a pass of more than one batch, issuance of the
// next may be under way. after-commit and after-push are those of the
// first commit.
const CrashEnv = "CERTOPS_TEST_CRASH_AT"

func crashPoint(name string) {
	if os.Getenv(CrashEnv) == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
