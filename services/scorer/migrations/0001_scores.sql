-- Every candidate's scores and verdict, so a rejected image stays explainable.
CREATE TABLE scores (
    job_id     uuid NOT NULL,
    attempt    int NOT NULL,
    index      int NOT NULL,
    key        text NOT NULL,
    passed     boolean NOT NULL,
    score      double precision NOT NULL,
    dimensions jsonb NOT NULL,
    selected   boolean NOT NULL,
    scored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, index)
);
