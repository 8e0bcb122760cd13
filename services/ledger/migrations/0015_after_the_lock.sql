-- What a batch reads once it holds its jobs' transfers (services/ledger/store: JOBS_LOCKED), as a
-- query of its own inside a function, so that the statement that takes the locks also carries
-- the reads: a VOLATILE function's query takes its snapshot when it runs, after the statement's
-- locks, and sees what their last holders committed (read in the statement itself, it would see
-- the snapshot taken before the statement waited). Each closed job, each job's provider costs,
-- each report, as rows of one shape. Tables are named as the caller's search_path finds them.
CREATE FUNCTION after_the_lock(job_ids uuid[], cost_jobs uuid[], report_jobs uuid[])
RETURNS TABLE (kind text, job_id uuid, amount bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT 'closed', c.job_id, NULL::bigint FROM closed_jobs c WHERE c.job_id = ANY(job_ids)
    UNION ALL SELECT 'cost', p.job_id, sum(p.cost_micro_usd)::bigint FROM provider_costs p
        WHERE p.job_id = ANY(cost_jobs) GROUP BY p.job_id
    UNION ALL SELECT 'report', r.job_id, r.n::bigint FROM reports r WHERE r.job_id = ANY(report_jobs)
$$;
