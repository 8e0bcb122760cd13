"""Subjects: a person or a product a tenant's jobs may be of, known by the tenant's photos of it,
kept sealed under the subject's own data key and erased with everything made from it."""
