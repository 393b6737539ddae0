{{/* Labels of every object: kustomize's (app.kubernetes.io/part-of) and Helm's. */}}
{{- define "akv-injector.labels" -}}
app.kubernetes.io/part-of: akv-injector
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The webhook pods' selector (fixed: the kustomize base's). */}}
{{- define "akv-injector.selectorLabels" -}}
app.kubernetes.io/name: akv-webhook
{{- end }}

{{/* The image of the webhook and of the injected init container. */}}
{{- define "akv-injector.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- if not (hasPrefix "sha256:" .Values.image.digest) -}}
{{- fail (printf "image.digest must be sha256:<64 hex digits>, got %q" .Values.image.digest) -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* DNS names of the Service, for the serving certificate. */}}
{{- define "akv-injector.serviceDNS" -}}
- akv-webhook.{{ .Release.Namespace }}.svc
- akv-webhook.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{/*
The namespaces and pods the webhook is sent, and the guard looks at: opt-in label,
kube-system and the release namespace never, the pod opt-out label; plus the values'
extensions.
*/}}
{{- define "akv-injector.namespaceSelector" -}}
matchLabels:
  akv-injector.io/injection: enabled
  {{- with .Values.webhookConfiguration.namespaceSelector.matchLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ concat (list "kube-system" .Release.Namespace) .Values.webhookConfiguration.excludeNamespaces | uniq | toJson }}
  {{- with .Values.webhookConfiguration.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "akv-injector.objectSelector" -}}
matchExpressions:
  - key: akv-injector.io/inject
    operator: NotIn
    values: ["false"]
  {{- with .Values.webhookConfiguration.objectSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Fails with a clear message on a certificate.source the chart does not know. */}}
{{- define "akv-injector.certificateSource" -}}
{{- $s := .Values.certificate.source -}}
{{- if not (has $s (list "generate" "cert-manager" "secret")) -}}
{{- fail (printf "certificate.source must be generate, cert-manager or secret, got %q" $s) -}}
{{- end -}}
{{- $s -}}
{{- end }}
