// The etcd server, built from its Go module (go.etcd.io/etcd/server/v3) at
// the version pinned in go.mod and verified by go.sum; the same entry point
// as upstream's server/main.go. scripts/install-system-deps.sh builds it into
// .cache/etcd/ for the cluster tests and scripts/local-cluster.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
