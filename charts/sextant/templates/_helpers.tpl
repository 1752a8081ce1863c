{{/* Suffix "-<revision>" for a non-default revision. */}}
{{- define "sextant.revSuffix" -}}
{{- if and .Values.revision (ne .Values.revision "default") -}}-{{ .Values.revision }}{{- end -}}
{{- end -}}

{{- define "sextant.revision" -}}
{{- if .Values.revision -}}{{ .Values.revision }}{{- else -}}default{{- end -}}
{{- end -}}

{{- define "sextant.name" -}}
sextant{{ include "sextant.revSuffix" . }}
{{- end -}}

{{- define "sextant.istiodName" -}}
istiod{{ include "sextant.revSuffix" . }}
{{- end -}}

{{- define "sextant.labels" -}}
app.kubernetes.io/name: sextant
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
istio.io/rev: {{ include "sextant.revision" . }}
{{- end -}}

{{- define "sextant.selector" -}}
app: sextant
istio.io/rev: {{ include "sextant.revision" . }}
{{- end -}}

{{/* The webhook client config: a URL when Sextant runs outside the cluster, else the Service. */}}
{{- define "sextant.webhookClient" -}}
{{- $path := index . 1 -}}
{{- with index . 0 -}}
{{- if .Values.webhooks.url }}
url: {{ printf "%s%s" (trimSuffix "/" .Values.webhooks.url) $path | quote }}
{{- else }}
service:
  name: {{ if .Values.service.nameAsIstiod }}{{ include "sextant.istiodName" . }}{{ else }}{{ include "sextant.name" . }}{{ end }}
  namespace: {{ .Release.Namespace }}
  path: {{ $path | quote }}
  port: 443
{{- end }}
{{- if .Values.caBundle }}
caBundle: {{ .Values.caBundle | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* What every injection webhook shares. Takes a dict: client (rendered clientConfig), failurePolicy. */}}
{{- define "sextant.injectCommon" -}}
clientConfig:
  {{- .client | nindent 2 }}
rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: [pods]
failurePolicy: {{ .failurePolicy }}
sideEffects: None
reinvocationPolicy: Never
admissionReviewVersions: ["v1"]
timeoutSeconds: 10
{{- end -}}
