"""Age (IMDB-WIKI-DIR) and depth (NYUD2-DIR), paper Sec. 3.2, Tab. 2-4: ``setup`` (model, loss,
state, step), ``trainer`` (the training loop), ``evaluation`` (predictions, DIR metrics, eval
mode) and ``config_fields`` (what the two configs share)."""
