"""One name per idea: a class name defined in two modules names the same idea in both, or it
is renamed. What may share a name, and why, is listed here; a class name defined twice and not
listed fails, and so does a listed name no longer defined twice (the list stays true).

The same idea at two ends: the Python client mirrors the public API's schemas under the names
the OpenAPI document gives them, and a service's own record of a thing the API shows keeps the
API's name. Two public schemas never share a name: the OpenAPI document would then name both
by their modules' paths (test_the_schemas_of_the_api_are_named_by_what_they_are, below).
"""

from tests.code_shape import ROOT, shape_of

SAME_MEANING = {
    # the client's model of the API's schema of the same name
    "Account": "credits of a tenant: the API's schema, the ledger's row of it, the client's model",
    "Billing": "a job's billing: the job view's part, the client's model of it",
    "Checkout": "a checkout opened for a credit pack, as the API and the client show it",
    "Failure": "why a job failed, as the job view and the client show it",
    "FirstFrame": "a delivered image as the first frame of a clip, as the API and the client take it",
    "Grant": "credits granted to a tenant: the API's schema, the ledger's row, the client's model",
    "JobEvent": "an entry of a job's event log, as the contract and the client read it",
    "JobEvents": "a page of a job's event log, as the API and the client show it",
    "JobPage": "a page of jobs, as the API and the client show it",
    "JobSummary": "a job in a list, as the API and the client show it",
    "PhotoVerdict": "a subject's photo and its verdict, as the API and the client show it",
    "PhotosAdded": "photos added to a subject, as the API and the client show it",
    "PlanLimits": "a plan's limits, as the API and the client show them",
    "Progress": "how far a job has come, as the job view and the client show it",
    "Subject": "a person or a product, as the API and the client show it",
    "SubjectPage": "a page of subjects, as the API and the client show it",
    "Subjects": "the subjects' operations: the service's and the client's `client.subjects`",
    "Upload": "a screened photo, as the API and the client show it",
    "WaivedCheck": "a check a subject's candidates are not held to, as the API and the client show it",
    "Usage": "a tenant's usage against its plan: the API's schema, the client's model",
    "NotFound": "no such object: delivery's routes raise it, the client raises its own",
    # one idea in two services
    "Attempt": "one POST of a webhook: delivery's record of it and the API's schema of it",
    "AuditEntry": "an entry of a service's audit trail, as ingest's and the ledger's APIs show it",
    "CreditPack": "credits sold at once: the price book's and the billing page's schema",
    "Difference": "what a replay found different, in ingest's and the ledger's replays",
    "ImageVerdict": "one image's verdict: the scorer's and an evaluation's schema of it",
    "Verification": "what verifying a file found: ingest's reading and the API's schema of it",
    # one idea in two implementations
    "Detection": "what a watermark's detector found, for each of the two watermark methods",
    "_Frozen": "the immutable base of a provider's input models, in each inputs module",
}


def twice_with_two_meanings(defined_twice: dict[str, list[str]]) -> list[str]:
    return sorted(f"{name}: {', '.join(paths)}" for name, paths in defined_twice.items() if name not in SAME_MEANING)


def test_a_class_name_defined_twice_names_one_idea() -> None:
    defined_twice = shape_of(ROOT).defined_twice
    breaches = twice_with_two_meanings(defined_twice)
    assert not breaches, "class names defined twice with two meanings (rename one, or list it):\n" + "\n".join(breaches)
    stale = sorted(set(SAME_MEANING) - set(defined_twice))
    assert not stale, f"listed but no longer defined twice: {stale}"


def test_the_rule_sees_a_name_given_to_two_ideas() -> None:
    planted = {"Order": ["services/scorer/selection.py", "services/delivery/rendering.py"], "Account": ["a", "b"]}
    assert twice_with_two_meanings(planted) == ["Order: services/scorer/selection.py, services/delivery/rendering.py"]


def named_by_module(schema_names) -> list[str]:
    """The schemas an OpenAPI document names by their modules' paths: FastAPI's way out when two
    models of one name meet in a document (`services__ingest__domain__Billing`)."""
    return sorted(name for name in schema_names if "__" in name)


def test_the_schemas_of_the_api_are_named_by_what_they_are() -> None:
    """A schema's name is part of the public surface (a generated client's class names): it says
    what the thing is, and a module moved inside the service leaves it as it was."""
    from services.ingest.app import openapi_document

    assert not named_by_module(openapi_document()["components"]["schemas"])


def test_the_rule_sees_a_schema_named_by_its_module() -> None:
    planted = ["Billing", "services__ingest__routes__usage__Usage", "JobView"]
    assert named_by_module(planted) == ["services__ingest__routes__usage__Usage"]
