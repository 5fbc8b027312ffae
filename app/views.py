"""What both faces show of the engine's results, in the engine's own words: the energy tags' labels
(measured or ESTIMATED), a configuration's label, the summary table's cells and its legend, and the
progress events of a run. Kept apart from `runs` so that a face can draw without loading llama.cpp (and
apart from the meter, which takes a while to import: the app imports this module before its first paint)."""

from energytui.engine.report import (TAG_LABELS, column_positions, config_key, config_label, config_labels,
                                     counted, energy_cell, energy_legend, report_text, select_columns, stalled,
                                     steady_view, summarise, table_cells)

__all__ = ["TAG_LABELS", "column_positions", "config_key", "config_label", "config_labels", "counted",
           "energy_cell", "energy_legend", "report_text", "select_columns", "stalled", "steady_view", "summarise",
           "table_cells"]
