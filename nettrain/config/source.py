"""Reading a YAML config so that every value can be traced back to its file and line.

Values come from ``yaml.safe_load``; line numbers from ``yaml.compose`` of the same text (a node
tree, nothing is constructed). ``--set KEY=VALUE`` overrides are applied to the loaded tree and
remembered, so that a bad override is reported as the ``--set`` that gave it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from nettrain.core.errors import UserError

# Keys whose value may be a bare name (or path) standing for a one-key mapping: the key it fills.
# ``--set train.optimizer.lr=0.01`` on ``optimizer: adam`` first expands it to ``{name: adam}``.
SHORTHANDS = {
    ("train", "optimizer"): "name",
    ("train", "schedule"): "name",
    ("data", "dataset"): "name",
    ("data", "preprocess"): "name",
    ("data", "train"): "path",
    ("data", "test"): "path",
    ("data", "validation"): "path",
    ("model", "layers", int): "type",
}


def shorthand_key(path) -> str | None:
    """The key a bare string at ``path`` stands for ('name', 'type', 'path'), or None."""
    for pattern, key in SHORTHANDS.items():
        if len(pattern) == len(path) and all(
            p == q or (p is int and isinstance(q, int)) for p, q in zip(pattern, path, strict=True)
        ):
            return key
    return None


def dotted(path) -> str:
    """('model', 'layers', 2, 'units') -> 'model.layers.2.units' (the form --set takes)."""
    return ".".join(str(p) for p in path) if path else "(top level)"


class ConfigSource:
    """A loaded config tree plus where each value came from.

    ``tree`` is the plain Python tree from safe_load; ``where(path)`` names the file and line of
    the key at ``path`` (or of its nearest ancestor present in the file), or the ``--set`` that
    wrote it.
    """

    def __init__(self, tree, file: str = "<config>", nodes=None, folder: Path | None = None):
        self.tree = tree
        self.file = file
        self.nodes = nodes
        self.folder = folder if folder is not None else Path.cwd()
        self.overrides: dict[tuple, str] = {}
        self.check_files = True  # False for a checkpoint's config: it may outlive its data files

    @classmethod
    def from_file(cls, path) -> ConfigSource:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(str(path), "config file not found") from None
        except UnicodeDecodeError as exc:
            raise UserError(
                str(path),
                f"not a text file (byte {exc.start} is not UTF-8); a config is a YAML text file",
            ) from None
        except OSError as exc:
            raise UserError(str(path), f"cannot read config: {exc.strerror or exc}") from None
        return cls.from_text(text, str(path), path.resolve().parent)

    @classmethod
    def from_text(cls, text: str, file: str = "<config>", folder: Path | None = None):
        try:
            tree = yaml.safe_load(text)
            nodes = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = exc.problem or str(exc)
            raise UserError(f"{file}{line}", f"invalid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise UserError(file, f"invalid YAML: {exc}") from None
        except RecursionError:
            raise UserError(file, "invalid YAML: nested too deeply") from None
        if tree is None:
            tree = {}
        if not isinstance(tree, dict):
            raise UserError(
                f"{file}:1", "the config must be a mapping of keys (seed, data, model, train)"
            )
        _reject_duplicate_keys(nodes, file)
        return cls(tree, file, nodes, folder)

    # -- where values come from -------------------------------------------------------------

    def line(self, path) -> int | None:
        """1-based line of the key at ``path``, or of its nearest ancestor found in the file."""
        node, line = self.nodes, None
        for key in path:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == str(key):
                        line, node = key_node.start_mark.line + 1, value_node
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    return line
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def override_for(self, path) -> str | None:
        """The ``--set`` text that wrote ``path`` or one of its ancestors, if any."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.overrides:
                return self.overrides[path[:n]]
        return None

    def where(self, path) -> str:
        """'file.yaml:12: model.layers.2.units' or '--set model.layers.2.units=0'."""
        override = self.override_for(path)
        if override is not None:
            return f"--set {override}"
        line = self.line(path)
        location = f"{self.file}:{line}" if line is not None else self.file
        return f"{location}: {dotted(path)}" if path else location

    def base_folder(self, path) -> Path:
        """Relative paths resolve against the config's folder; those given by --set, the cwd."""
        return Path.cwd() if self.override_for(path) is not None else self.folder

    # -- --set KEY=VALUE ---------------------------------------------------------------------

    def apply_overrides(self, items) -> None:
        """Apply ``--set`` items, each ``dotted.key=yaml value``, in order."""
        for item in items:
            self.apply_override(item)

    def apply_override(self, item: str) -> None:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}", "expected KEY=VALUE, e.g. --set train.epochs=1")
        try:
            value = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError):
            raise UserError(f"--set {item[:60]}", "the value is not valid YAML") from None
        path = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
        node = self.tree
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, dict) and node.get(part) is None:  # created: errors name the --set
                self.overrides.setdefault(path[: depth + 1], item)
                node[part] = {}
            _expand_shorthand(node, part, path[: depth + 1])
            node = _child(node, part, path[: depth + 1], item)
        last = path[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last >= len(node):
                raise UserError(
                    f"--set {item}",
                    f"{dotted(path)}: no such list entry (the list has {len(node)})",
                )
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise UserError(f"--set {item}", f"{dotted(path[:-1])} is not a mapping or a list")
        self.overrides[path] = item


def _expand_shorthand(node, part, path) -> None:
    """A bare name on the way to a deeper key becomes its mapping: 'adam' -> {name: adam}.

    Only the tree changes: the file's line of the shorthand still names the expanded key."""
    in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
    if not (isinstance(node, dict) or in_list):
        return
    value = node[part]
    key = shorthand_key(path)
    if key is not None and isinstance(value, str):
        node[part] = {key: value}


def _child(node, part, path, item):
    if isinstance(node, dict):
        return node[part]
    if isinstance(node, list) and isinstance(part, int):
        if part >= len(node):
            raise UserError(
                f"--set {item}", f"{dotted(path)}: no such list entry (the list has {len(node)})"
            )
        return node[part]
    raise UserError(f"--set {item}", f"{dotted(path[:-1])} is not a mapping or a list")


def _reject_duplicate_keys(root, file: str) -> None:
    """safe_load silently keeps the last of two equal keys; a config that has them is a typo.

    Also refuses an alias inside its own anchor (an endless structure). Each node is visited
    once, without recursion: aliases share nodes, so a 'billion laughs' file stays cheap.
    """
    state = {}  # id(node) -> "open" while its children are being visited, then "done"
    stack = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            state[id(node)] = "done"
            continue
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            continue
        if state.get(id(node)) == "done":
            continue
        if state.get(id(node)) == "open":  # reached again from inside itself
            raise UserError(
                f"{file}:{node.start_mark.line + 1}",
                "invalid YAML: an alias refers to the anchor it is inside (an endless structure)",
            )
        state[id(node)] = "open"
        stack.append((node, True))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, False) for item in node.value)
            continue
        seen = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if isinstance(key, str) and key in seen:
                raise UserError(
                    f"{file}:{key_node.start_mark.line + 1}",
                    f"duplicate key '{key}' (first given on line {seen[key]})",
                )
            seen[key] = key_node.start_mark.line + 1
            stack.extend([(key_node, False), (value_node, False)])
