{{/*
Names
*/}}
{{- define "certscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it already contains the chart name.
Cut to 52 characters so that suffixes ("-host-config", "-dashboard-…") stay within limits.
*/}}
{{- define "certscope.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "certscope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "certscope.labels" -}}
helm.sh/chart: {{ include "certscope.chart" . }}
{{ include "certscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: certscope
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels shared by every pod of the release (the exporter and the DaemonSet): what a
ServiceMonitor, PodMonitor or NetworkPolicy selects.
*/}}
{{- define "certscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-workload selectors: the Deployment/StatefulSet and the DaemonSet must not select each
other's pods.
*/}}
{{- define "certscope.exporter.selectorLabels" -}}
{{ include "certscope.selectorLabels" . }}
app.kubernetes.io/component: exporter
{{- end }}

{{- define "certscope.host.selectorLabels" -}}
{{ include "certscope.selectorLabels" . }}
app.kubernetes.io/component: host-exporter
{{- end }}

{{- define "certscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certscope.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "certscope.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/*
A certscope config (values `config` or `daemonset.config`) as YAML, empty sections left out.
*/}}
{{- define "certscope.renderConfig" -}}
{{- $out := dict }}
{{- range $key, $value := . }}
{{- if $value }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- if $out }}
{{- toYaml $out }}
{{- else -}}
{}
{{- end }}
{{- end }}

{{/*
"true" when a config has a kind: kubernetes source (it needs RBAC and the API token).
*/}}
{{- define "certscope.hasKubernetesSource" -}}
{{- range .sources }}
{{- if eq (toString .kind) "kubernetes" }}true{{ end }}
{{- end }}
{{- end }}

{{/*
"true" when RBAC is needed: the exporter's config, or the DaemonSet's when it is enabled, has a
kind: kubernetes source.
*/}}
{{- define "certscope.rbacNeeded" -}}
{{- if include "certscope.hasKubernetesSource" .Values.config }}true
{{- else if and .Values.daemonset.enabled (include "certscope.hasKubernetesSource" .Values.daemonset.config) }}true
{{- end }}
{{- end }}

{{/*
"true" when the pods of a config need the service account token: a kubernetes source, or a
Vault source that logs in with Kubernetes auth. Argument: (list $ $config).
*/}}
{{- define "certscope.automountToken" -}}
{{- $root := index . 0 }}
{{- $config := index . 1 }}
{{- if not (kindIs "invalid" $root.Values.serviceAccount.automountToken) }}
{{- $root.Values.serviceAccount.automountToken }}
{{- else }}
{{- $needs := false }}
{{- range $config.sources }}
{{- if eq (toString .kind) "kubernetes" }}
{{- $needs = true }}
{{- else if and (eq (toString .kind) "vault") (eq (toString (dig "auth" "method" "" .)) "kubernetes") }}
{{- $needs = true }}
{{- end }}
{{- end }}
{{- $needs }}
{{- end }}
{{- end }}

{{/*
Refuse namespaced RBAC that does not cover the kubernetes sources.
*/}}
{{- define "certscope.checkRbacNamespaces" -}}
{{- if and .Values.rbac.create .Values.rbac.namespaces }}
{{- $configs := dict "config" .Values.config }}
{{- if .Values.daemonset.enabled }}
{{- $_ := set $configs "daemonset.config" .Values.daemonset.config }}
{{- end }}
{{- range $where, $config := $configs }}
{{- range $i, $src := $config.sources }}
{{- if eq (toString $src.kind) "kubernetes" }}
{{- if not $src.namespaces }}
{{- fail (printf "%s.sources[%d] (%s) reads every namespace, but rbac.namespaces grants access to %s only: list the source's namespaces, or empty rbac.namespaces for cluster-wide access" $where $i $src.name (join ", " $.Values.rbac.namespaces)) }}
{{- end }}
{{- range $src.namespaces }}
{{- if not (has . $.Values.rbac.namespaces) }}
{{- fail (printf "%s.sources[%d] (%s) reads namespace %q, which is not in rbac.namespaces" $where $i $src.name .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Container port and probes, shared by the exporter and the DaemonSet.
*/}}
{{- define "certscope.containerCommon" -}}
ports:
  - name: http
    containerPort: 9793
    protocol: TCP
livenessProbe:
  {{- include "certscope.probeAction" (list . "/-/healthy") | nindent 2 }}
  {{- toYaml .Values.livenessProbe | nindent 2 }}
readinessProbe:
  {{- include "certscope.probeAction" (list . "/-/ready") | nindent 2 }}
  {{- toYaml .Values.readinessProbe | nindent 2 }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Mounts and volumes of `credentials` entries (existing Secrets, read-only). Argument: the list.
*/}}
{{- define "certscope.credentialMounts" -}}
{{- range . }}
- name: credentials-{{ .name }}
  mountPath: {{ .mountPath | default (printf "/etc/certscope/credentials/%s" .name) }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "certscope.credentialVolumes" -}}
{{- range . }}
- name: credentials-{{ .name }}
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: {{ .defaultMode | default 0440 }}
    {{- with .items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end }}

{{/*
The pod template of the exporter (Deployment or StatefulSet).
*/}}
{{- define "certscope.exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "certscope.labels" . | nindent 4 }}
    app.kubernetes.io/component: exporter
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if .Values.web.config }}
    checksum/web-config: {{ include (print $.Template.BasePath "/web-config-secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "certscope.serviceAccountName" . }}
  automountServiceAccountToken: {{ include "certscope.automountToken" (list . .Values.config) }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: certscope
      image: {{ include "certscope.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config.file=/etc/certscope/config/certscope.yml
        - --web.listen-address={{ .Values.listenHost }}:9793
        - --log.level={{ .Values.logLevel }}
        {{- include "certscope.webArgs" . | nindent 8 }}
        {{- if and .Values.sharding.enabled (eq .Values.sharding.indexSource "podIndexLabel") }}
        - --shard=$(CERTSCOPE_SHARD_INDEX)/{{ .Values.replicas }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: HOME
          value: /tmp
        {{- if .Values.sharding.enabled }}
        {{- if eq .Values.sharding.indexSource "podIndexLabel" }}
        - name: CERTSCOPE_SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- else }}
        - name: CERTSCOPE_SHARD
          value: auto/{{ .Values.replicas }}
        {{- end }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- include "certscope.containerCommon" . | nindent 6 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/certscope/config
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- include "certscope.credentialMounts" .Values.credentials | nindent 8 }}
        {{- include "certscope.webMounts" . | nindent 8 }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "certscope.fullname" . }}-config
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- include "certscope.credentialVolumes" .Values.credentials | nindent 4 }}
    {{- include "certscope.webVolumes" . | nindent 4 }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The exporter's own endpoint (`web`): flags, the web config Secret's mount, the scheme.
*/}}
{{- define "certscope.webScheme" -}}
{{- if (.Values.web.config).tls_server_config }}https{{ else }}http{{ end }}
{{- end }}

{{- define "certscope.webArgs" -}}
{{- if .Values.web.enableLifecycle }}
- --web.enable-lifecycle
{{- end }}
{{- if .Values.web.config }}
- --web.config.file=/etc/certscope/web/web-config.yml
{{- end }}
{{- end }}

{{- define "certscope.webMounts" -}}
{{- if .Values.web.config }}
- name: web-config
  mountPath: /etc/certscope/web
  readOnly: true
{{- end }}
{{- end }}

{{- define "certscope.webVolumes" -}}
{{- if .Values.web.config }}
- name: web-config
  secret:
    secretName: {{ include "certscope.fullname" . }}-web-config
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
A kubelet probe: GET over the exporter's scheme, or a TCP check when basic authentication
is on (the kubelet cannot send credentials). Arguments: (list $ path).
*/}}
{{- define "certscope.probeAction" -}}
{{- $ := index . 0 }}
{{- if ($.Values.web.config).basic_auth_users }}
tcpSocket:
  port: http
{{- else }}
httpGet:
  path: {{ index . 1 }}
  port: http
  {{- if eq (include "certscope.webScheme" $) "https" }}
  scheme: HTTPS
  {{- end }}
{{- end }}
{{- end }}
