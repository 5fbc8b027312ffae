"""One pane per tab: Queue, Live, Results, Advisor and Host. The app composes them."""
