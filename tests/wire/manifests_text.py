"""Small manifest texts the wire and control-plane scenarios share."""


def namespace(name: str, annotations: dict[str, str] | None = None) -> str:
    lines = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    if annotations:
        lines += "  annotations:\n" + "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    return lines


def configmap(name: str, namespace: str = "demo", data: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> str:
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    if annotations:
        text += "  annotations:\n" + "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    text += "data:\n" + "".join(f"  {k}: \"{v}\"\n" for k, v in (data or {"key": "value"}).items())
    return text


def secret(name: str, namespace: str, value: str) -> str:
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"stringData:\n  password: \"{value}\"\n")


def deployment(name: str, namespace: str = "demo", image: str = "nginx:1.27", app: str | None = None,
               annotations: dict[str, str] | None = None) -> str:
    app = app or name
    text = f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    if annotations:
        text += "  annotations:\n" + "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items())
    return text + f"""spec:
  replicas: 1
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
      - name: web
        image: {image}
"""


def service(name: str, namespace: str = "demo") -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
    targetPort: 8080
"""


CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.gitops-cron.dev
spec:
  group: example.gitops-cron.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"""


def widget(name: str, namespace: str = "demo", size: int = 1) -> str:
    return (f"apiVersion: example.gitops-cron.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\nspec:\n  size: {size}\n")
