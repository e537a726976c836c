{{/* Names, labels and the values every workload shares. */}}

{{- define "clair.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clair.fullname" -}}
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

{{/* The services this release runs: [indexer matcher notifier] or [combo]. */}}
{{- define "clair.components" -}}
{{- if eq .Values.mode "combo" }}
{{- list "combo" | toJson }}
{{- else if .Values.notifier.enabled }}
{{- list "indexer" "matcher" "notifier" | toJson }}
{{- else }}
{{- list "indexer" "matcher" | toJson }}
{{- end }}
{{- end }}

{{/* Name of a component's Deployment and Service. */}}
{{- define "clair.componentName" -}}
{{- printf "%s-%s" (include "clair.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clair.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "clair.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clair
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "clair.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clair.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "clair.componentLabels" -}}
{{ include "clair.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "clair.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "clair.secretName" -}}
{{- default (printf "%s-secret" (include "clair.fullname" .)) .Values.secret.existingSecret }}
{{- end }}

{{- define "clair.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "clair.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "clair.postgresqlName" -}}
{{- printf "%s-postgresql" (include "clair.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* In-cluster base URL of a component's API (its Service). */}}
{{- define "clair.serviceURL" -}}
{{- printf "http://%s:%d" (include "clair.componentName" .) (int .root.Values.service.port) }}
{{- end }}

{{/* Where subscribers reach the notifier API: the ingress when there is one. */}}
{{- define "clair.notifierCallback" -}}
{{- $component := ternary "combo" "notifier" (eq .Values.mode "combo") }}
{{- if and .Values.ingress.enabled .Values.ingress.host }}
{{- $scheme := ternary "https" "http" (gt (len .Values.ingress.tls) 0) }}
{{- printf "%s://%s/notifier/api/v1/notification/" $scheme .Values.ingress.host }}
{{- else }}
{{- printf "%s/notifier/api/v1/notification/" (include "clair.serviceURL" (dict "root" . "component" $component)) }}
{{- end }}
{{- end }}

{{/*
The Clair config file: what the chart must set for pods to find each other, with
.Values.config merged over it. The services drain for 10 s less than the pod's termination
grace period, so that they exit before the kubelet's SIGKILL.
*/}}
{{- define "clair.config" -}}
{{- $port := int .Values.service.port }}
{{- $indexer := include "clair.serviceURL" (dict "root" . "component" "indexer") }}
{{- $matcher := include "clair.serviceURL" (dict "root" . "component" "matcher") }}
{{- $base := dict
  "http_listen_addr" (printf ":%d" $port)
  "introspection_addr" (printf ":%d" (int .Values.service.introspectionPort))
  "indexer" (dict "migrations" true)
  "matcher" (dict "migrations" true "indexer_addr" $indexer)
  "notifier" (dict "migrations" true "indexer_addr" $indexer "matcher_addr" $matcher)
  "metrics" (dict "name" "prometheus")
  "shutdown_grace_period" (printf "%ds" (sub (int .Values.terminationGracePeriodSeconds) 10))
}}
{{- if .Values.auth.psk.enabled }}
{{- $_ := set $base "auth" (dict "psk" (dict "iss" .Values.auth.psk.issuers)) }}
{{- end }}
{{- $merged := mustMergeOverwrite $base (deepCopy .Values.config) }}
{{- $notifier := $merged.notifier }}
{{- if and $notifier.webhook (not $notifier.webhook.callback) }}
{{- $_ := set $notifier.webhook "callback" (include "clair.notifierCallback" .) }}
{{- end }}
{{- range $section, $value := $merged }}
{{- if and (kindIs "map" $value) (eq (len $value) 0) }}
{{- $_ := unset $merged $section }}
{{- end }}
{{- end }}
{{- toYaml $merged }}
{{- end }}

{{/* The environment of a component's container: connection strings and PSK from the Secret. */}}
{{- define "clair.env" -}}
{{- $root := .root }}
{{- $secret := include "clair.secretName" $root }}
{{- $services := ternary (list "indexer" "matcher" "notifier") (list .component) (eq .component "combo") }}
{{- if and (eq .component "combo") (not (include "clair.notifierDelivers" $root)) }}
{{- $services = list "indexer" "matcher" }}
{{- end }}
- name: CLAIR_CONF
  value: /etc/clair/config.yaml
{{- range $services }}
- name: CLAIR_{{ upper . }}__CONNSTRING
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index $root.Values.secret.keys (printf "%sConnstring" .) }}
{{- end }}
{{- if $root.Values.auth.psk.enabled }}
- name: CLAIR_AUTH__PSK__KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.secret.keys.pskKey }}
{{- end }}
{{- if or (eq .component "indexer") (eq .component "combo") }}
- name: CLAIR_LAYER_CACHE
  value: /var/cache/clair/layers
{{- end }}
- name: TMPDIR
  value: /tmp
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Non-empty when the config names a notifier delivery mechanism. */}}
{{- define "clair.notifierDelivers" -}}
{{- $n := .Values.config.notifier | default dict }}
{{- if or $n.webhook $n.amqp $n.stomp }}yes{{ end }}
{{- end }}

{{/* A connection string for one service: the Secret's value when the chart makes the Secret. */}}
{{- define "clair.connstring" -}}
{{- $root := .root }}
{{- if $root.Values.postgresql.enabled }}
{{- $pg := $root.Values.postgresql }}
{{- printf "postgresql://%s:%s@%s:5432/%s?sslmode=disable" $pg.username .password (include "clair.postgresqlName" $root) $pg.database }}
{{- else }}
{{- $db := $root.Values.externalDatabase }}
{{- $own := index $db (printf "%sConnstring" .service) }}
{{- $value := default $db.connstring $own }}
{{- if not $value }}
{{- fail (printf "externalDatabase: set connstring or %sConnstring (postgresql.enabled is false)" .service) }}
{{- end }}
{{- $value }}
{{- end }}
{{- end }}
