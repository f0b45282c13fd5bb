-- Custom migration: leave room in each page of tasks so a transition can write the new row
-- version beside the old one (a HOT update, no index entries). 70 % keeps three-quarters of a
-- page for rows while a task's few transitions fit; autovacuum reclaims the dead versions.
ALTER TABLE tasks SET (fillfactor = 70);
