{{/* Names and labels, as `helm create` writes them. */}}
{{- define "gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.fullname" -}}
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

{{- define "gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The gateway's pods only: the migration Job's pod must not get the Service's traffic. */}}
{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "gateway.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "gateway.secretName" -}}
{{- default (include "gateway.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* "true" when a Job migrates: enabled, and a database URL that is not the pods' own SQLite. */}}
{{- define "gateway.migrations" -}}
{{- if and .Values.migrations.enabled (or .Values.secrets.databaseUrl .Values.existingSecret) }}true{{ end }}
{{- end }}

{{/* secrets.masterKey; else the one generated at install, read back on upgrades; else a new one. */}}
{{- define "gateway.masterKey" -}}
{{- if .Values.secrets.masterKey }}
{{- .Values.secrets.masterKey }}
{{- else }}
{{- $current := lookup "v1" "Secret" .Release.Namespace (include "gateway.fullname" .) }}
{{- if and $current $current.data (hasKey $current.data "GATEWAY_MASTER_KEY") }}
{{- index $current.data "GATEWAY_MASTER_KEY" | b64dec }}
{{- else }}
{{- printf "sk-%s" (randAlphaNum 40) }}
{{- end }}
{{- end }}
{{- end }}

{{/* What the gateway's containers share: the config file, the Secret's keys, the image. */}}
{{- define "gateway.env" -}}
- name: GATEWAY_CONFIG
  value: /etc/gateway/config.yaml
- name: PORT
  value: {{ .Values.containerPort | quote }}
- name: GATEWAY_NUM_WORKERS
  value: {{ .Values.workers | quote }}
- name: DISABLE_SCHEMA_UPDATE
  value: "true"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
