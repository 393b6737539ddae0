// Stand-in for monis.app/mlog, the logging helper that github.com/Azure/azure-workload-identity
// imports. monis.app is a vanity host that the Go module proxy reachable here does not serve
// (403 "Go module host not permitted"), so scripts/testbed-kube builds the real webhook with
// `replace monis.app/mlog => <this directory>`. It only logs (JSON lines on stderr via logr);
// it has no influence on what the webhook does to pods.
module monis.app/mlog

go 1.22

require github.com/go-logr/logr v1.4.3
