"""Qt-free engine: model and data loading, masks, importance, history, evaluation, export."""
