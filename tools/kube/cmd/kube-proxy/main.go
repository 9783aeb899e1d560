// Command kube-proxy is the upstream Kubernetes service proxy: the data plane
// tests run it in nftables mode inside a cluster's node network namespace, so
// that LoadBalancer address:port really reaches a consumer pod.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() {
	os.Exit(cli.Run(app.NewProxyCommand()))
}
