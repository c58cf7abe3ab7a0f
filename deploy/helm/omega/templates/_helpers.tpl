{{/* Names, labels and the pieces the three Deployments share. */}}

{{- define "omega.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "omega.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "omega.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "omega.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "omega.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "omega.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "serve"). */}}
{{- define "omega.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omega.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "omega.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "omega.databaseSecret" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "omega.fullname" .) }}
{{- end }}
{{- end }}

{{- define "omega.authSecret" -}}
{{- default (printf "%s-auth" (include "omega.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* The Secret holding the secret shared by the constellation and the helper. */}}
{{- define "omega.helperSecret" -}}
{{- if .Values.constellation.helper.existingSecret }}
{{- .Values.constellation.helper.existingSecret }}
{{- else if .Values.helper.secret.existingSecret }}
{{- .Values.helper.secret.existingSecret }}
{{- else }}
{{- printf "%s-helper-secret" (include "omega.fullname" .) }}
{{- end }}
{{- end }}

{{/* The helper URL the constellation and workers call; empty when there is none. */}}
{{- define "omega.helperUrl" -}}
{{- if .Values.constellation.helper.url }}
{{- .Values.constellation.helper.url }}
{{- else if .Values.helper.enabled }}
{{- printf "http://%s-helper:%v" (include "omega.fullname" .) .Values.helper.service.port }}
{{- end }}
{{- end }}

{{/* Where the constellation and workers read the shared helper secret. */}}
{{- define "omega.helperSecretPath" -}}
/var/run/omega/helper/aggregation-secret
{{- end }}

{{/* Pod-level settings every Deployment carries. */}}
{{- define "omega.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* The placement settings of one component: pass its values. */}}
{{- define "omega.placement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Fail the render on values that cannot work. */}}
{{- define "omega.validate" -}}
{{- if and (or .Values.constellation.enabled .Values.worker.enabled) (not .Values.database.existingSecret) (not .Values.database.url) }}
{{- fail "set database.existingSecret (a Secret with the PostgreSQL URL) or database.url" }}
{{- end }}
{{- if and .Values.database.url (not (or (hasPrefix "postgresql://" .Values.database.url) (hasPrefix "postgres://" .Values.database.url))) }}
{{- fail "database.url must be a postgresql:// URL: SQLite cannot be shared by replicas and workers" }}
{{- end }}
{{- if and .Values.constellation.helper.url (not .Values.constellation.helper.existingSecret) (not .Values.helper.enabled) }}
{{- fail "constellation.helper.url needs constellation.helper.existingSecret (the secret the helper's operator gave you)" }}
{{- end }}
{{- end }}
