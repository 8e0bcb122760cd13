-- The images each tenant asked for each day (UTC) by jobs not rejected: what a plan's daily
-- limit is checked against at every submission (and GET /v1/usage shows). Counted from the
-- jobs as they are written, so a submission reads one row where it summed every job the
-- tenant placed that day: the check no longer grows with the day's jobs. A trigger keeps it,
-- so every writer of jobs does (a release running beside this one too).
CREATE TABLE daily_images (
    tenant_id text NOT NULL,
    day       date NOT NULL,
    images    bigint NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- A job counts on its day from when it is written until it is rejected (or deleted). The
-- function names the tables of the schema it is created in, whatever a writer's search_path.
CREATE FUNCTION daily_images_counted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    job jobs := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    added bigint := coalesce((job.view->>'images')::int, 0);
BEGIN
    IF TG_OP = 'INSERT' AND NEW.state = 'rejected' OR TG_OP = 'DELETE' AND OLD.state = 'rejected' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' AND NEW.state = 'rejected' THEN
        added := -added;
    END IF;
    INSERT INTO daily_images AS d (tenant_id, day, images)
    VALUES (job.tenant_id, (job.created_at AT TIME ZONE 'UTC')::date, added)
    ON CONFLICT (tenant_id, day) DO UPDATE SET images = d.images + excluded.images;
    RETURN NULL;
END $$;

CREATE TRIGGER daily_images_on_write AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION daily_images_counted();
CREATE TRIGGER daily_images_on_rejection AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN ((OLD.state = 'rejected') IS DISTINCT FROM (NEW.state = 'rejected'))
    EXECUTE FUNCTION daily_images_counted();

-- The days a submission may still read (today, and yesterday for one that counted at midnight),
-- counted from the jobs already written. The triggers above are created first: their lock holds
-- up every writer of jobs from here to the commit, so no job written meanwhile is missed or
-- counted twice (0.1.0's replicas wait the length of this one scan). Earlier days are not
-- counted: nothing reads them.
INSERT INTO daily_images (tenant_id, day, images)
SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, sum((view->>'images')::int)
FROM jobs WHERE state <> 'rejected'
  AND created_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '1 day') AT TIME ZONE 'UTC'
GROUP BY 1, 2;
