-- Who moved production: the API caller that promoted or rolled back (NULL for a move a
-- deploy made, and for rows written before this column existed).
ALTER TABLE production_history ADD COLUMN actor TEXT;
