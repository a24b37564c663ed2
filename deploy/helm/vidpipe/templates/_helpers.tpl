{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "vidpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "vidpipe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vidpipe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vidpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vidpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vidpipe.labels" -}}
helm.sh/chart: {{ include "vidpipe.chart" . }}
{{ include "vidpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vidpipe
{{- end }}

{{/* Names of the three service accounts. */}}
{{- define "vidpipe.apiServiceAccount" -}}{{ include "vidpipe.fullname" . }}-api{{- end }}
{{- define "vidpipe.operatorServiceAccount" -}}{{ include "vidpipe.fullname" . }}-operator{{- end }}
{{- define "vidpipe.dispatcherServiceAccount" -}}{{ include "vidpipe.fullname" . }}-dispatcher{{- end }}
{{- define "vidpipe.processorServiceAccount" -}}{{ include "vidpipe.fullname" . }}-processor{{- end }}

{{/* Where VideoJobs and their Jobs live. */}}
{{- define "vidpipe.jobsNamespace" -}}{{ default .Release.Namespace .Values.jobs.namespace }}{{- end }}

{{/* registry/repository:tag for one of the images. */}}
{{- define "vidpipe.image" -}}
{{- $root := index . 0 }}{{- $repo := index . 1 }}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag }}
{{- if $root.Values.image.registry }}{{ printf "%s/%s:%s" $root.Values.image.registry $repo $tag }}{{ else }}{{ printf "%s:%s" $repo $tag }}{{ end }}
{{- end }}

{{/*
The settings the API and the operator share (common/vidpipe/settings.py), rendered once under their
one name each; the operator passes the media limits on to every processor Job.
*/}}
{{- define "vidpipe.sharedEnv" -}}
- {name: VIDPIPE_S3_BUCKET, value: {{ .Values.s3.bucket | quote }}}
- {name: VIDPIPE_S3_REGION, value: {{ .Values.s3.region | quote }}}
{{- with .Values.s3.endpoint }}
- {name: VIDPIPE_S3_ENDPOINT_URL, value: {{ . | quote }}}
{{- end }}
- name: VIDPIPE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ .Values.s3.existingSecret }}, key: {{ .Values.s3.accessKeyIdKey }}}
- name: VIDPIPE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.s3.existingSecret }}, key: {{ .Values.s3.secretAccessKeyKey }}}
{{ include "vidpipe.mongoEnv" . }}
- {name: VIDPIPE_MAX_DURATION_SECONDS, value: {{ .Values.limits.maxDurationSeconds | quote }}}
- {name: VIDPIPE_MAX_PIXELS, value: {{ .Values.limits.maxPixels | int64 | quote }}}
- {name: VIDPIPE_MAX_STREAMS, value: {{ .Values.limits.maxStreams | quote }}}
{{- end }}

{{/* MongoDB's URL (from the existing Secret: it may hold a password) and database. */}}
{{- define "vidpipe.mongoEnv" -}}
- name: VIDPIPE_MONGO_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.mongo.existingSecret }}, key: {{ .Values.mongo.urlKey }}}
- {name: VIDPIPE_MONGO_DATABASE, value: {{ .Values.mongo.database | quote }}}
{{- end }}

{{/* The TCP port of an http(s) URL: the explicit one, else 80 for http and 443 otherwise. */}}
{{- define "vidpipe.urlPort" -}}
{{- $url := urlParse . }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- if $port }}{{ $port }}{{ else if eq $url.scheme "http" }}80{{ else }}443{{ end }}
{{- end }}

{{/* S3 ports Pods may reach, as a JSON list: networkPolicy.s3.ports, else those of the endpoints. */}}
{{- define "vidpipe.s3Ports" -}}
{{- $ports := list }}
{{- range .Values.networkPolicy.s3.ports }}{{ $ports = append $ports (int .) }}{{ end }}
{{- if not $ports }}
{{- $ports = append $ports (include "vidpipe.urlPort" (default "https://s3.amazonaws.com" .Values.s3.endpoint) | atoi) }}
{{- with .Values.s3.processorEndpoint }}{{ $ports = append $ports (include "vidpipe.urlPort" . | atoi) }}{{ end }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}

{{/* One NetworkPolicy egress rule: TCP to (list ports cidrs); no cidrs means any address. */}}
{{- define "vidpipe.egressRule" -}}
- ports:
    {{- range index . 0 }}
    - {port: {{ int . }}, protocol: TCP}
    {{- end }}
  {{- with index . 1 }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  {{- end }}
{{- end }}

{{/* Egress every component needs: DNS, the Kubernetes API and S3; with (list . true) MongoDB too. */}}
{{- define "vidpipe.baseEgress" -}}
{{- $root := index . 0 }}
{{- $np := $root.Values.networkPolicy -}}
- ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
  {{- with $np.dns.to }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{ include "vidpipe.egressRule" (list $np.kubernetesApi.ports $np.kubernetesApi.cidrs) }}
{{ include "vidpipe.egressRule" (list (include "vidpipe.s3Ports" $root | fromJsonArray) $np.s3.cidrs) }}
{{- if index . 1 }}
{{ include "vidpipe.egressRule" (list $np.mongo.ports $np.mongo.cidrs) }}
{{- end }}
{{- end }}

{{/* NetworkPolicy ingress rule: the metrics port, from the Prometheus peer. */}}
{{- define "vidpipe.metricsIngress" -}}
{{- $np := .Values.networkPolicy -}}
- ports: [{port: metrics, protocol: TCP}]
  from:
    - podSelector: {{ $np.metrics.podSelector | toJson }}
      {{- if kindIs "map" $np.metrics.namespaceSelector }}
      namespaceSelector: {{ $np.metrics.namespaceSelector | toJson }}
      {{- end }}
{{- end }}

{{/* The Secret holding the playback signing key: the installer's, or the one the chart makes. */}}
{{- define "vidpipe.playbackSecret" -}}
{{- .Values.playback.existingSecret | default (printf "%s-playback" (include "vidpipe.fullname" .)) -}}
{{- end }}
