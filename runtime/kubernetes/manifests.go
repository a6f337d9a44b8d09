package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
)

// LabelName carries the instance name (runtime.Spec.Name) on its objects and pods.
// Everything the runtime creates also carries the run's labels (lease.NamespaceLabels:
// lease.LabelManaged, and lease.LabelRun with lease.RunLabelValue of the run id) and the
// whole run id in the annotation lease.AnnotationRun, the keys the lease package and the
// next command's clean find a run by.
const LabelName = "dev.faultline.name"

// holdVolume is the name of the volume that holds the hold file (HoldEnv).
const holdVolume = "faultline-hold"

// ContainerName is the name of the one container of every pod the runtime makes.
const ContainerName = "main"

// bindAnyEnv lets a component listen on 0.0.0.0: the pod's network is the boundary.
const bindAnyEnv = "FAULTLINE_BIND_ANY"

// readiness probe pacing: a component's readiness is seen within a second, and a frozen
// one leaves its Service's endpoints after two missed probes.
const (
	probePeriod    = 1
	probeTimeout   = 1
	probeThreshold = 2
)

// dnsLabel is what a Service, Deployment, ConfigMap or namespace name must be.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

// NamespaceFor is the namespace of run runID: "faultline-" and the run id lowercased,
// with anything a namespace name may not hold replaced, and cut with a hash when too long.
func NamespaceFor(runID string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(runID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	ns := strings.Trim("faultline-"+b.String(), "-")
	if len(ns) > validation.DNS1123LabelMaxLength {
		h := shortHash(runID)
		ns = strings.TrimRight(ns[:validation.DNS1123LabelMaxLength-len(h)-1], "-") + "-" + h
	}
	return ns
}

// selector picks the pods of one instance.
func selector(runID, name string) map[string]string {
	return map[string]string{lease.LabelRun: lease.RunLabelValue(runID), LabelName: name}
}

// objectMeta names an object of the run and labels it; the spec's labels that are valid
// Kubernetes labels are added, and all of them are kept as annotations (a run directory
// is not a label value).
func objectMeta(runID, ns, name string, s runtime.Spec) metav1.ObjectMeta {
	labels := lease.NamespaceLabels(runID)
	labels[LabelName] = s.Name
	ann := map[string]string{lease.AnnotationRun: runID}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		v := s.Labels[k]
		if _, ours := ann[k]; ours {
			continue
		}
		ann[k] = v
		if len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			if _, ours := labels[k]; !ours {
				labels[k] = v
			}
		}
	}
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: ann}
}

// validate adds Kubernetes' own rules to Spec.Validate: names are DNS labels (they are
// Service names), and host paths are refused, since the harness's directories are not on
// the cluster's nodes.
func validate(s runtime.Spec) []error {
	errs := s.Validate()
	if s.Name != "" && (!dnsLabel.MatchString(s.Name) || len(s.Name) > validation.DNS1123LabelMaxLength-len(filesSuffix)) {
		errs = append(errs, fmt.Errorf("name %q is not a kubernetes service name (lowercase letters, digits and '-', at most %d)", s.Name, validation.DNS1123LabelMaxLength-len(filesSuffix)))
	}
	if s.Container != nil {
		for _, a := range s.Container.Aliases {
			if !dnsLabel.MatchString(a) || len(a) > validation.DNS1123LabelMaxLength {
				errs = append(errs, fmt.Errorf("container: alias %q is not a kubernetes service name", a))
			}
		}
		for i, m := range s.Container.Mounts {
			if m.HostPath != "" {
				errs = append(errs, fmt.Errorf("container: mounts[%d] host path %s: the harness's directories are not on the cluster's nodes (use a volume)", i, m.HostPath))
			}
			if m.Volume != "" && !dnsLabel.MatchString(m.Volume) {
				errs = append(errs, fmt.Errorf("container: volume %q is not a kubernetes name", m.Volume))
			}
		}
	}
	return errs
}

// filesSuffix names an instance's ConfigMap and Secret.
const filesSuffix = "-files"

// manifests is everything one Spec becomes.
type manifests struct {
	Deployment *appsv1.Deployment
	Services   []*corev1.Service
	ConfigMap  *corev1.ConfigMap // nil without public files
	Secret     *corev1.Secret    // nil without private files
}

// build maps s onto its objects. Files with no permission for group and others (a key,
// a config holding one) go into a Secret, the rest into a ConfigMap; each file is mounted
// alone at its target (subPath), so the image's directories stay as they are.
func (r *Runtime) build(s runtime.Spec) manifests {
	cs := s.Container
	meta := func(name string) metav1.ObjectMeta { return objectMeta(r.runID, r.ns, name, s) }
	var m manifests
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for i, f := range cs.Files {
		key := "file-" + strconv.Itoa(i)
		mode := int32(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		item := []corev1.KeyToPath{{Key: key, Path: path.Base(f.Target), Mode: &mode}}
		var src corev1.VolumeSource
		if mode&0o077 == 0 {
			if m.Secret == nil {
				m.Secret = &corev1.Secret{ObjectMeta: meta(s.Name + filesSuffix), Data: map[string][]byte{}}
			}
			m.Secret.Data[key] = f.Content
			src.Secret = &corev1.SecretVolumeSource{SecretName: s.Name + filesSuffix, Items: item}
		} else {
			if m.ConfigMap == nil {
				m.ConfigMap = &corev1.ConfigMap{ObjectMeta: meta(s.Name + filesSuffix), BinaryData: map[string][]byte{}}
			}
			m.ConfigMap.BinaryData[key] = f.Content
			src.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.Name + filesSuffix}, Items: item}
		}
		vol := "file-" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: src})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: f.Target, SubPath: path.Base(f.Target), ReadOnly: true})
	}
	for i, mt := range cs.Mounts {
		vol := "data-" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: r.volumeSource(mt.Volume)})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: mt.Target, ReadOnly: mt.ReadOnly})
	}
	// The hold of a crash (see HoldEnv) lives on a volume of the pod.
	volumes = append(volumes, corev1.Volume{Name: holdVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	mounts = append(mounts, corev1.VolumeMount{Name: holdVolume, MountPath: holdDir})
	env := []corev1.EnvVar{{Name: bindAnyEnv, Value: "1"}, {Name: HoldEnv, Value: holdFile}}
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e corev1.EnvVar) bool { return e.Name == k })
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	var ports []corev1.ContainerPort
	for _, p := range cs.Ports {
		ports = append(ports, corev1.ContainerPort{ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	c := corev1.Container{
		Name: ContainerName, Image: cs.Image, Command: []string{s.Command}, Args: slices.Clone(s.Args),
		Env: env, WorkingDir: s.Dir, Ports: ports, VolumeMounts: mounts,
		// Images are pushed or imported before the run. IfNotPresent is right for them: a
		// tag of Faultline's images (images.Ref) is its binary's hash, so one tag always
		// names the same content and a node's copy is never stale; a different binary is a
		// different tag, pulled on first use. (An --image naming a moving tag, such as
		// latest, is the user's choice and is not re-pulled.)
		ImagePullPolicy: corev1.PullIfNotPresent,
	}
	if rd := cs.Ready; rd != nil {
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: rd.Path, Port: intstr.FromInt32(int32(rd.Port)),
			}},
			PeriodSeconds: probePeriod, TimeoutSeconds: probeTimeout, FailureThreshold: probeThreshold,
		}
	}
	grace := int64((r.grace + time.Second - 1) / time.Second)
	one := int32(1)
	pod := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(meta("").Labels), Annotations: meta("").Annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{c},
			Volumes:    volumes,
			// The pod's pid 1 is then the pause process, not the component: a signal sent
			// from inside the pod (crash, pause) reaches the component, which as pid 1 of
			// its own namespace would ignore SIGKILL and SIGSTOP.
			ShareProcessNamespace:         ptr(true),
			TerminationGracePeriodSeconds: &grace,
			EnableServiceLinks:            ptr(false),
			AutomountServiceAccountToken:  ptr(false),
			Hostname:                      s.Name,
			RestartPolicy:                 corev1.RestartPolicyAlways,
		},
	}
	m.Deployment = &appsv1.Deployment{
		ObjectMeta: meta(s.Name),
		Spec: appsv1.DeploymentSpec{
			// One pod per instance: the harness names replicas itself (order-1, order-2)
			// and faults them one by one.
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: selector(r.runID, s.Name)},
			Template: pod,
			// Never two pods of one instance at once: they would share its data.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
		},
	}
	var svcPorts []corev1.ServicePort
	for _, p := range cs.Ports {
		svcPorts = append(svcPorts, corev1.ServicePort{
			Name: "p" + strconv.Itoa(p), Port: int32(p), TargetPort: intstr.FromInt32(int32(p)), Protocol: corev1.ProtocolTCP,
		})
	}
	if len(svcPorts) > 0 {
		for _, name := range append([]string{s.Name}, cs.Aliases...) {
			m.Services = append(m.Services, &corev1.Service{
				ObjectMeta: meta(name),
				Spec: corev1.ServiceSpec{
					Selector: selector(r.runID, s.Name), Ports: svcPorts,
					// Headless: the name resolves to the pod's own address, as a container's
					// name does on Docker. A ClusterIP is routable only once kube-proxy has
					// programmed it, 1–2 s after the Service's endpoints change
					// (kubeproxy_network_programming_duration_seconds), so the first
					// connections of a run just started, or to a pod just replaced, went
					// into a black hole for a SYN retransmit and callers' breakers opened
					// before any fault.
					ClusterIP: corev1.ClusterIPNone,
					// A component that is starting is dialled all the same (etcd's peers,
					// a broker's cluster): readiness gates the harness, not the peers.
					PublishNotReadyAddresses: true,
				},
			})
		}
	}
	return m
}

// volumeSource is where a run volume's data lives: a directory on the node, under the
// runtime's volume root, named by namespace and volume. It survives a container restart
// and a pod's replacement, and every replica mounting it shares it (the SQLite WAL of a
// service's replicas needs that), which an emptyDir (one pod's) cannot give and a
// PersistentVolumeClaim gives only with a ReadWriteMany provisioner.
func (r *Runtime) volumeSource(volume string) corev1.VolumeSource {
	t := corev1.HostPathDirectoryOrCreate
	return corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: path.Join(r.volumeRoot, r.ns, volume), Type: &t,
	}}
}

func ptr[T any](v T) *T { return &v }
