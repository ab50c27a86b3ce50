// Command cert-manager-controller starts cert-manager's controllers from the pinned
// github.com/cert-manager/cert-manager module, for the side-by-side benchmark
// (bench/vs_cert_manager.py). build.sh compiles it in a wrapper module whose path lies under
// github.com/cert-manager/cert-manager/, because upstream's own command (cmd/controller) is a
// separate, unpublished module and only a path under that prefix may import internal/...
//
// It wires the controllers the way upstream's command does: the same versioned defaults,
// one controller ContextFactory, the default-enabled controllers from controller.Known(),
// the same informer factories, a Prometheus metrics server and a /livez server. It
// differs on purpose in two ways: it takes a subset of upstream's flags (same names and
// meanings), and it runs a single replica, so --leader-elect must be false.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"

	config "github.com/cert-manager/cert-manager/internal/apis/config/controller"
	configscheme "github.com/cert-manager/cert-manager/internal/apis/config/controller/scheme"
	defaults "github.com/cert-manager/cert-manager/internal/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/internal/apis/config/controller/validation"
	cmdutil "github.com/cert-manager/cert-manager/internal/cmd/util"
	configv1alpha1 "github.com/cert-manager/cert-manager/pkg/apis/config/controller/v1alpha1"
	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/server"

	// Controllers register themselves with controller.Register, issuer backends with the
	// issuer registry, from init(); upstream's command imports the same set.
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/venafi"
)

func main() {
	logf.InitLogs()
	ctx, exit := cmdutil.SetupExitHandler(context.Background(), cmdutil.GracefulShutdown)
	defer exit() // runs before logf.FlushLogs, so the exit code from a signal is kept
	defer logf.FlushLogs()

	cfg, err := configuration(os.Args[1:])
	if err == nil {
		err = run(ctx, cfg)
	}
	if err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		cmdutil.SetExitCode(err)
	}
}

// configuration starts from upstream's versioned defaults (the same as a Helm install with
// no values), converts them to the internal type, then applies the flags.
func configuration(args []string) (*config.ControllerConfiguration, error) {
	scheme, _, err := configscheme.NewSchemeAndCodecs()
	if err != nil {
		return nil, err
	}
	versioned := &configv1alpha1.ControllerConfiguration{}
	scheme.Default(versioned)
	cfg := &config.ControllerConfiguration{}
	if err := scheme.Convert(versioned, cfg, nil); err != nil {
		return nil, err
	}

	fs := pflag.NewFlagSet("cert-manager-controller", pflag.ContinueOnError)
	fs.StringVar(&cfg.APIServerHost, "master", cfg.APIServerHost, "API server address (overrides the kubeconfig's)")
	fs.StringVar(&cfg.KubeConfig, "kubeconfig", cfg.KubeConfig, "kubeconfig to use (out of cluster)")
	fs.Float32Var(&cfg.KubernetesAPIQPS, "kube-api-qps", cfg.KubernetesAPIQPS, "client-side QPS limit towards the API server")
	fs.IntVar(&cfg.KubernetesAPIBurst, "kube-api-burst", cfg.KubernetesAPIBurst, "client-side burst limit towards the API server")
	fs.StringVar(&cfg.ClusterResourceNamespace, "cluster-resource-namespace", cfg.ClusterResourceNamespace, "namespace holding the Secrets that ClusterIssuers refer to")
	fs.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "watch only this namespace (disables ClusterIssuers)")
	fs.BoolVar(&cfg.LeaderElectionConfig.Enabled, "leader-elect", cfg.LeaderElectionConfig.Enabled, "must be false: this build runs a single replica")
	fs.StringSliceVar(&cfg.Controllers, "controllers", cfg.Controllers, "controllers to run: '*' for the defaults, '-name' to drop one")
	fs.IntVar(&cfg.NumberOfConcurrentWorkers, "concurrent-workers", cfg.NumberOfConcurrentWorkers, "workers per controller")
	fs.StringVar(&cfg.MetricsListenAddress, "metrics-listen-address", cfg.MetricsListenAddress, "host:port of the Prometheus /metrics server")
	fs.StringVar(&cfg.HealthzListenAddress, "internal-healthz-listen-address", cfg.HealthzListenAddress, "host:port of the /livez server")
	logf.AddFlags(&cfg.Logging, fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every option is a --flag", fs.Args())
	}
	if cfg.LeaderElectionConfig.Enabled {
		return nil, errors.New("--leader-elect must be false: this benchmark build runs a single replica without leader election")
	}
	if errs := validation.ValidateControllerConfiguration(cfg, nil); len(errs) > 0 {
		return nil, fmt.Errorf("invalid flags: %w", errs.ToAggregate())
	}
	if err := logf.ValidateAndApply(&cfg.Logging); err != nil {
		return nil, fmt.Errorf("invalid logging flags: %w", err)
	}
	return cfg, nil
}

// enabledControllers reads --controllers as upstream does: '*' means the default set,
// '-name' removes one, and cluster-scoped controllers are off when --namespace is set.
func enabledControllers(cfg *config.ControllerConfiguration) sets.Set[string] {
	enabled, disabled := sets.New[string](), sets.New[string]()
	for _, name := range cfg.Controllers {
		switch {
		case name == "*":
			enabled.Insert(defaults.DefaultEnabledControllers...)
		case strings.HasPrefix(name, "-"):
			disabled.Insert(strings.TrimPrefix(name, "-"))
		default:
			enabled.Insert(name)
		}
	}
	if enabled.Len() == 0 && disabled.Len() > 0 {
		enabled.Insert(defaults.DefaultEnabledControllers...)
	}
	if cfg.Namespace != "" {
		enabled.Delete(defaults.ClusterScopedControllers...)
	}
	return enabled.Difference(disabled)
}

func contextOptions(cfg *config.ControllerConfiguration) (controller.ContextOptions, error) {
	var errs []error
	quantity := func(flag, text string) resource.Quantity {
		q, err := resource.ParseQuantity(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("--acme-http01-solver-resource-%s %q: %w", flag, text, err))
		}
		return q
	}
	nameservers := cfg.ACMEDNS01Config.RecursiveNameservers
	if len(nameservers) == 0 {
		nameservers = dnsutil.RecursiveNameservers
	}
	opts := controller.ContextOptions{
		Kubeconfig:         cfg.KubeConfig,
		APIServerHost:      cfg.APIServerHost,
		KubernetesAPIQPS:   cfg.KubernetesAPIQPS,
		KubernetesAPIBurst: cfg.KubernetesAPIBurst,
		Namespace:          cfg.Namespace,
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 cfg.ACMEHTTP01Config.SolverImage,
			HTTP01SolverResourceRequestCPU:    quantity("request-cpu", cfg.ACMEHTTP01Config.SolverResourceRequestCPU),
			HTTP01SolverResourceRequestMemory: quantity("request-memory", cfg.ACMEHTTP01Config.SolverResourceRequestMemory),
			HTTP01SolverResourceLimitsCPU:     quantity("limits-cpu", cfg.ACMEHTTP01Config.SolverResourceLimitsCPU),
			HTTP01SolverResourceLimitsMemory:  quantity("limits-memory", cfg.ACMEHTTP01Config.SolverResourceLimitsMemory),
			ACMEHTTP01SolverRunAsNonRoot:      cfg.ACMEHTTP01Config.SolverRunAsNonRoot,
			HTTP01SolverNameservers:           cfg.ACMEHTTP01Config.SolverNameservers,
			DNS01Nameservers:                  nameservers,
			DNS01CheckRetryPeriod:             cfg.ACMEDNS01Config.CheckRetryPeriod,
			DNS01CheckAuthoritative:           !cfg.ACMEDNS01Config.RecursiveNameserversOnly,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: cfg.MaxConcurrentChallenges},
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        cfg.ClusterResourceNamespace,
			ClusterIssuerAmbientCredentials: cfg.ClusterIssuerAmbientCredentials,
			IssuerAmbientCredentials:        cfg.IssuerAmbientCredentials,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerName:                 cfg.IngressShimConfig.DefaultIssuerName,
			DefaultIssuerKind:                 cfg.IngressShimConfig.DefaultIssuerKind,
			DefaultIssuerGroup:                cfg.IngressShimConfig.DefaultIssuerGroup,
			DefaultAutoCertificateAnnotations: cfg.IngressShimConfig.DefaultAutoCertificateAnnotations,
			ExtraCertificateAnnotations:       cfg.IngressShimConfig.ExtraCertificateAnnotations,
		},
		CertificateOptions: controller.CertificateOptions{
			EnableOwnerRef:           cfg.EnableCertificateOwnerRef,
			CopiedAnnotationPrefixes: cfg.CopiedAnnotationPrefixes,
		},
		ConfigOptions: controller.ConfigOptions{EnableGatewayAPI: cfg.EnableGatewayAPI},
	}
	return opts, errors.Join(errs...)
}

// serveHTTP serves srv on ln until ctx ends, then shuts it down within 5 s.
func serveHTTP(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener) {
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx) //nolint:contextcheck // ctx is already done
	})
}

func run(parent context.Context, cfg *config.ControllerConfiguration) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	log := logf.FromContext(ctx)
	g, ctx := errgroup.WithContext(ctx)

	opts, err := contextOptions(cfg)
	if err != nil {
		return err
	}
	factory, err := controller.NewContextFactory(ctx, opts)
	if err != nil {
		return err
	}
	base, err := factory.Build()
	if err != nil {
		return err
	}

	// The per-certificate gauges (certmanager_certificate_ready_status, ...) are collectors
	// over the informers' listers; they must be set up before the server registers them.
	informers := base.SharedInformerFactory
	base.Metrics.SetupCertificateCollector(informers.Certmanager().V1().Certificates().Lister())
	base.Metrics.SetupACMECollector(informers.Acme().V1().Challenges().Lister())

	metricsLn, err := server.Listen(ctx, "tcp", cfg.MetricsListenAddress)
	if err != nil {
		return fmt.Errorf("--metrics-listen-address %s: %w", cfg.MetricsListenAddress, err)
	}
	serveHTTP(ctx, g, base.Metrics.NewServer(metricsLn), metricsLn)

	healthzLn, err := net.Listen("tcp", cfg.HealthzListenAddress)
	if err != nil {
		return fmt.Errorf("--internal-healthz-listen-address %s: %w", cfg.HealthzListenAddress, err)
	}
	livez := healthz.NewServer(cfg.LeaderElectionConfig.HealthzTimeout)
	g.Go(func() error { return livez.Start(ctx, healthzLn) })

	enabled := enabledControllers(cfg)
	log.Info("starting controllers", "enabled", sets.List(enabled), "qps", cfg.KubernetesAPIQPS, "burst", cfg.KubernetesAPIBurst)
	for name, construct := range controller.Known() {
		if !enabled.Has(name) {
			continue
		}
		loop, err := construct(factory)
		if err != nil {
			cancel()
			return errors.Join(fmt.Errorf("controller %s: %w", name, err), g.Wait())
		}
		g.Go(func() error { return loop.Run(cfg.NumberOfConcurrentWorkers, ctx) })
	}

	// Informers start after every controller has asked for the ones it needs.
	informers.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())

	err = g.Wait()
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	informers.Shutdown()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
