mod fixtures;
mod scenarios;
mod states;
mod steps;
