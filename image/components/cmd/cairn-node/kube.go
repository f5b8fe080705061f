package main

import (
	"context"
	"os"
	_ "time/tzdata" // CronJob time zones, as upstream's kube-apiserver and kube-controller-manager embed them

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's client auth plugins
)

// The Kubernetes applets do what upstream's cmd/<name>/main.go does.

func kubeAPIServer() int { return cli.Run(apiserver.NewAPIServerCommand()) }

func kubeControllerManager() int { return cli.Run(controllermanager.NewControllerManagerCommand()) }

func kubeScheduler() int { return cli.Run(scheduler.NewSchedulerCommand()) }

func kubelet() int { return cli.Run(kubeletapp.NewKubeletCommand(context.Background())) }

func kubeProxy() int { return cli.Run(proxy.NewProxyCommand()) }

func kubectl() int {
	// As upstream: set klog's verbosity before the command is built, so
	// plugin discovery and .kuberc parsing log at the level asked for.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err) // prints the error and exits non-zero
		return 1
	}
	return 0
}
