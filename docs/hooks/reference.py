"""Reference pages made when the site is built, from what the platform itself declares, so
they cannot drift from it:

* `reference/api.md`: the HTTP API, rendered from the OpenAPI document ingest serves at
  `/openapi.json` (`services.ingest.app.openapi_document`, the same function; a test holds
  the two equal): every operation with its scope, parameters, body, answers and problems,
  and every schema with its fields.
* `reference/cli.md`: the `genline` command line, each command's generated `--help`.
* `reference/roles.md`: the scopes and the roles made of them, from
  `services.ingest.roles`, the table the API's dependencies and the console read.
"""

import argparse
import json
from collections.abc import Iterator
from typing import Any

from mkdocs.structure.files import File, Files

from genline_cli.main import command_tree
from services.ingest import roles
from services.ingest.app import openapi_document

METHODS = ("get", "post", "put", "patch", "delete")


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "reference/api.md", content=api_page(openapi_document())))
    files.append(File.generated(config, "reference/cli.md", content=cli_page(command_tree().parser)))
    files.append(File.generated(config, "reference/roles.md", content=roles_page()))
    return files


# The HTTP API ----------------------------------------------------------------------------

def api_page(document: dict) -> str:
    info, schemas = document["info"], document["components"]["schemas"]
    lines = ["# HTTP API", "", "Rendered from the OpenAPI document the platform serves (`GET /openapi.json`,"
             " or `genline openapi` without a platform).", "", info["description"], "",
             "Authenticate with `Authorization: Bearer <API key>`, or, in the console, with the session"
             " a member signed in to (its cookie, and its `X-CSRF-Token` on every change). Each operation"
             " names the scope it needs; a key or a member's role without it gets 403 `missing-scope`"
             " (see [Roles and scopes](roles.md)). Every error is a problem"
             " (`application/problem+json`, [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457)):"
             " see [Problem](#schema-problem).", ""]
    for tag in document.get("tags", []):
        operations = list(operations_tagged(document, tag["name"]))
        if not operations:
            continue
        lines += [f"## {tag['name'].capitalize()}", "", tag.get("description", ""), ""]
        for method, path, operation in operations:
            lines += operation_section(method, path, operation, schemas)
    named = {tag["name"] for tag in document.get("tags", [])}
    untagged = [op for op in all_operations(document) if not named & set(op[2].get("tags", []))]
    if untagged:
        lines += ["## Other operations", ""]
        for method, path, operation in untagged:
            lines += operation_section(method, path, operation, schemas)
    lines += ["## Schemas", ""]
    for name in sorted(schemas):
        lines += schema_section(name, schemas[name])
    return "\n".join(lines) + "\n"


def all_operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def operations_tagged(document: dict, tag: str) -> Iterator[tuple[str, str, dict]]:
    return ((m, p, op) for m, p, op in all_operations(document) if tag in op.get("tags", []))


def operation_section(method: str, path: str, operation: dict, schemas: dict) -> list[str]:
    lines = [f"### {operation.get('summary', operation['operationId'])} {{ #{operation['operationId']} }}", "",
             f"`{method.upper()} {path}`", ""]
    scopes = list(dict.fromkeys(scope for requirement in operation.get("security", [])
                                for scopes in requirement.values() for scope in scopes))
    if operation.get("security"):
        lines += [f"Scope: {', '.join(f'`{s}`' for s in scopes) or 'any valid key'}", ""]
    if operation.get("description"):
        lines += [operation["description"], ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {type_of(p.get('schema', {}))} | {'yes' if p.get('required') else ''}"
                  f" | {cell(p.get('description') or p.get('schema', {}).get('description', ''))} |" for p in parameters]
        lines.append("")
    body = operation.get("requestBody")
    if body:
        for media_type, content in body.get("content", {}).items():
            lines += [f"Body (`{media_type}`): {type_of(content.get('schema', {}))}", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in operation.get("responses", {}).items():
        contents = response.get("content", {})
        described = ", ".join(f"`{media}` {type_of(content.get('schema', {}))}" for media, content in contents.items())
        lines.append(f"| {status} | {cell(response.get('description', ''))} | {described} |")
    lines.append("")
    example = first_example(operation)
    if example is not None:
        lines += ["Example answer:", "", "```json", json.dumps(example, indent=2)[:4000], "```", ""]
    return lines


def first_example(operation: dict) -> Any:
    for status in ("200", "201", "202"):
        for content in operation.get("responses", {}).get(status, {}).get("content", {}).values():
            if "example" in content:
                return content["example"]
    return None


def schema_section(name: str, schema: dict) -> list[str]:
    lines = [f"### {name} {{ #schema-{name.lower()} }}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        lines += [f"| `{field}` | {type_of(spec)} | {'yes' if field in required else ''} | {cell(spec.get('description', ''))} |"
                  for field, spec in properties.items()]
        lines.append("")
    elif "enum" in schema:
        lines += ["One of " + ", ".join(f"`{value}`" for value in schema["enum"]), ""]
    else:
        lines += [f"Type: {type_of(schema)}", ""]
    return lines


def type_of(schema: dict) -> str:
    """A schema in a few words, with links to the named schemas it uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})"
    for union in ("anyOf", "oneOf"):
        if union in schema:
            parts = [type_of(part) for part in schema[union] if part.get("type") != "null"]
            nullable = any(part.get("type") == "null" for part in schema[union])
            return " or ".join(parts) + (" or null" if nullable else "")
    if "allOf" in schema:
        return " and ".join(type_of(part) for part in schema["allOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    bounds = [f"{word} {schema[key]}" for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"),
                                                         ("maxLength", "length ≤")) if key in schema]
    shown = kind + (f" ({schema['format']})" if "format" in schema else "")
    return shown + (f", {', '.join(bounds)}" if bounds else "")


def cell(text: str) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


# The command line ------------------------------------------------------------------------

def cli_page(parser: argparse.ArgumentParser) -> str:
    lines = ["# Command line", "",
             "`genline` is installed with the platform (`make run` and `make test` install it in `.venv/bin`)."
             " Every command's `--help` prints what is below. The commands for your jobs take"
             " `GENLINE_API_URL` and `GENLINE_API_KEY` (or `--api-url`, `--api-key`) and `--json`; the"
             " operator's commands read the platform's settings from the environment (`make run` writes"
             " them to `.genline/operator.env`).", ""]
    for words, command in commands(parser, ("genline",)):
        depth = min(len(words), 4)
        lines += [f"{'#' * (depth + 1)} {' '.join(words)}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under `parser`, depth first, in the order `--help` lists them."""
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = (*words, name)
                child.prog = " ".join(path)
                yield path, child
                yield from commands(child, path)


# Roles and scopes ------------------------------------------------------------------------

def roles_page() -> str:
    """The role table: which scopes each role holds, and what each scope allows."""
    names = roles.ROLE_NAMES
    lines = ["# Roles and scopes", "",
             "A member of a tenant has one role; a role is a set of scopes. An API key holds scopes too; a key a"
             " member or service account owns does what both its scopes and its owner's role allow, so a"
             " demotion narrows the owner's keys at once. Every operation of the [HTTP API](api.md) names the"
             " scope it needs, and the console offers only the pages the role allows. This table is rendered"
             " from the one the platform enforces (`GET /v1/roles` serves the same).", "",
             "| scope | what it allows | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for scope, description in roles.SCOPE_DESCRIPTIONS.items():
        marks = " | ".join("yes" if scope in roles.ROLES[role] else "" for role in names)
        lines.append(f"| `{scope}` | {description} | {marks} |")
    lines += ["", "## The roles", ""]
    lines += [f"- **{role}**: {roles.ROLE_DESCRIPTIONS[role]}." for role in names]
    lines += ["", "A member gives or takes away only roles whose scopes are all their own: an admin cannot make,"
              " demote or remove an owner. A tenant with an owner always keeps one.", ""]
    return "\n".join(lines)
