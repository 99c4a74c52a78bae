"""Certificates in Kubernetes Secrets and ConfigMaps: list once, then watch.

What is read
    Secrets whose ``type`` is in ``secret_types`` (default ``kubernetes.io/tls``), plus
    ``Opaque`` Secrets when ``opaque_keys`` is set. ``kubernetes.io/tls`` Secrets: keys
    ``tls.crt`` and ``ca.crt``. Other selected types (``Opaque``, custom types): keys matching
    an ``opaque_keys`` glob (``tls.crt`` and ``ca.crt`` when ``opaque_keys`` is empty).
    ConfigMaps (``configmaps: true``): keys in ``data`` and ``binaryData`` matching
    ``configmap_keys``. ``tls.key`` and every ``*.key`` of a selected Secret are never read as
    certificates, whatever the globs: they become private-key records (type, size, public key
    hash; the key itself is dropped at once). A ``kubernetes.io/tls`` Secret without
    ``tls.crt`` or ``tls.key`` is a ``missing_key`` item error.
    Values are PEM bundles (every CERTIFICATE block, other blocks skipped) or one DER
    certificate. A named key (``tls.crt``, a glob without wildcards) that holds no certificate is
    an item error; a key matched only by a wildcard glob is skipped silently (a glob is a guess).

Locations
    ``<namespace>/<name>#<key>`` for a Secret, ``configmap:<namespace>/<name>#<key>`` for a
    ConfigMap; ``position`` is the index of the certificate in the key's PEM bundle.

How
    Auth and transport are kubernetes_asyncio's: the in-cluster service account when
    ``kubeconfig`` is unset and ``KUBERNETES_SERVICE_HOST`` is set, else the kubeconfig file
    (``kubeconfig``, default ``$KUBECONFIG`` or ``~/.kube/config``; ``context``). One stream per
    resource and scope: cluster-wide, or one per namespace in ``namespaces``. Each stream lists
    in pages of 500 (``limit`` + ``continue``), then watches from the list's resourceVersion
    with bookmarks, resuming from the last seen resourceVersion when a stream breaks and
    re-listing only on 410 Gone (HTTP status or ERROR event) and every ``interval``.
    Responses are read raw (``_preload_content=False``) and only what is needed is pulled out
    of the JSON: no model objects, and kubernetes_asyncio never holds or debug-logs a body
    full of private keys. Per object only the parsed result stays in memory (its
    resourceVersion, :class:`~certscope.results.StoredCert` records and item errors); a
    re-list skips objects whose resourceVersion is unchanged.

Filters
    ``label_selector`` (Secrets) and ``configmap_label_selector`` (ConfigMaps) go to the server;
    so do ``type=<t>`` when exactly one Secret type is read and ``metadata.namespace!=<ns>``
    for ``exclude_namespaces`` on cluster-wide streams. Everything is checked again here.

Labels (per certificate, :attr:`~certscope.results.StoredCert.labels`)
    cert-manager annotations give ``renewal="cert-manager"``,
    ``certmanager_issuer="<issuer-kind>/<issuer-name>"`` and
    ``certmanager_certificate="<namespace>/<certificate-name>"``; ``labels_from_annotations`` and
    ``labels_from_labels`` map metric labels to annotation / object-label values (they win over
    the cert-manager ones). Absent keys give no label.

Publishing
    ``watch`` publishes the full result as soon as every stream has listed once, then on change
    with a leading-edge debounce (at most one publish per 0.5 s), and after every re-list.
    A failure is published at least once even if it heals within the debounce window.

Errors (internal; none escapes ``refresh`` or ``watch``)::

    ApiError(reason, message, retry_after)    a request failed; ``reason`` is a
    │                                         :class:`~certscope.errors.SourceFailure`:
    │                                         unreachable, timeout, unauthorized, forbidden,
    │                                         throttled, http_error, config_error, internal_error
    └── Gone                                  410: resourceVersion or continue token expired
                                              (re-list; reported as http_error only when
                                              a fresh list is refused with 410)
    BrokenStream                              an open watch ended uncleanly: resume, no re-list

A failing stream makes the published result ``up=False`` with the reason, keeping the last
good certificates. A namespace the exporter may not read (403 on a namespaced stream) is the
exception: it is an item error at ``<namespace>/*`` (``configmap:<namespace>/*``) with reason
``forbidden`` and the source stays up with the other namespaces, unless every stream is
forbidden (a forbidden cluster-wide stream fails the source as any other failure does); the
stream retries with jittered exponential backoff (at least ``Retry-After`` when the server
sends one). List pages and watch requests share one client-side rate limit (``qps``,
``burst``; aiolimiter's leaky bucket).

Modules
    :mod:`.extract` (pure: objects → certificates, keys, item errors), :mod:`.stream` (the API
    at the edge: paged lists, watches, bookmarks, 410 and the errors), :mod:`.reader` (the
    :class:`KubernetesReader`: a task per stream, the stores, publishing).
"""

from __future__ import annotations

from .reader import KubernetesReader
from .stream import Backoff, parse_retry_after

__all__ = ["Backoff", "KubernetesReader", "parse_retry_after"]
