-- A mirror that failed permanently too often is paused: not scheduled until a person syncs it
-- by hand or changes its settings. NULL means not paused; otherwise the reason shown to users.
ALTER TABLE repos ADD COLUMN paused_reason TEXT;
-- Written by every run when it starts: how many other runs of the same repository were still
-- running at that moment (after interrupted ones were closed). Always 0 unless two workers
-- synced one repository at once: the record that proves they never do.
ALTER TABLE sync_runs ADD COLUMN concurrent_at_start INTEGER NOT NULL DEFAULT 0;
