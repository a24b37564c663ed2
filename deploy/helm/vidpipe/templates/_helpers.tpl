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
{{- define "vidpipe.processorServiceAccount" -}}{{ include "vidpipe.fullname" . }}-processor{{- end }}

{{/* Where VideoJobs and their Jobs live. */}}
{{- define "vidpipe.jobsNamespace" -}}{{ default .Release.Namespace .Values.jobs.namespace }}{{- end }}

{{/* registry/repository:tag for one of the three images. */}}
{{- define "vidpipe.image" -}}
{{- $root := index . 0 }}{{- $repo := index . 1 }}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag }}
{{- if $root.Values.image.registry }}{{ printf "%s/%s:%s" $root.Values.image.registry $repo $tag }}{{ else }}{{ printf "%s:%s" $repo $tag }}{{ end }}
{{- end }}

{{/* S3 credentials as env vars, from the existing Secret. */}}
{{- define "vidpipe.s3CredentialsEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef: {name: {{ (index . 2).Values.s3.existingSecret }}, key: {{ (index . 2).Values.s3.accessKeyIdKey }}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef: {name: {{ (index . 2).Values.s3.existingSecret }}, key: {{ (index . 2).Values.s3.secretAccessKeyKey }}}
{{- end }}

{{- define "vidpipe.mongoUrlEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef: {name: {{ (index . 1).Values.mongo.existingSecret }}, key: {{ (index . 1).Values.mongo.urlKey }}}
{{- end }}
