DROP TABLE experiment_runs;
